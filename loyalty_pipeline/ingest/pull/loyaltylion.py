"""LoyaltyLion: every page of `GET /v2/customers`, each customer object one line, as the adapter reads it
(ingest/platforms/loyaltylion.py).

As the API reference documents it:
- developers.loyaltylion.com/api-reference/v2/resources/customers/list-customers: `limit` 1..500 (100 by
  default); the answer is `{"customers": [...], "cursor": {"prev", "next"}}`.
- …/api-reference/pagination: the next page is `?cursor=<next>` (the first request's filters travel in
  the cursor; only `limit` is read again); a null `next` means no more pages. The cursors are also in
  the `Link` header, which is read when the body carries none.
- …/api-reference/authentication/api-keys: an API key as Bearer token (token & secret Basic auth is
  deprecated, …/authentication/token-secret); 401 = invalid key, 403 = a scope is missing
  (read_customers).
- …/api-reference/introduction: 20 requests per second for every endpoint.

The customer object carries no expiry (only the `customer.approaching_points_expiration` webhook does):
a pulled export has null next_expiry_date / next_expiry_amount (docs/pull.md).
"""

from __future__ import annotations

import httpx

from ..platforms import loyaltylion
from .client import PullClient
from .listing import Page, Phase, Settings, objects
from .staging import Staging

NAME = loyaltylion.NAME
PATH = "/v2/customers"


def headers(credentials: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials['api_key_env']}"}


def _link_cursor(response: httpx.Response) -> str | None:
    url = response.links.get("next", {}).get("url")
    return httpx.URL(url).params.get("cursor") if url else None


def phases(settings: Settings) -> list[Phase]:
    def fetch(client: PullClient, cursor: str | None, page: int, staging: Staging) -> Page:
        what = f"page {page} of GET {PATH}"
        params = {"limit": settings.page_size, **({"cursor": cursor} if cursor else {})}
        body, response = client.get(PATH, params, what=what)
        customers = objects(body, "customers", what)
        if "cursor" in body:
            nxt = body["cursor"].get("next") if isinstance(body["cursor"], dict) else None
        else:
            nxt = _link_cursor(response)
        return Page(customers, nxt or None)

    return [Phase("customers", fetch)]


def build(staging: Staging, settings: Settings):
    """The customers as listed are the export: the staged file itself."""
    return staging.path("customers"), staging.state("customers").rows
