"""LoyaltyLion's `GET /v2/customers`, as its API reference documents it (ingest/pull/loyaltylion.py cites the
pages): Bearer API key, `limit` 1..500 (100 by default), opaque cursors `{"customers", "cursor": {"prev",
"next"}}` (newest first: the objects in the order given), the cursors in the `Link` header too, and
`{"error": {"message"}}` error bodies.

`loop = True`: the cursor after page 2 is page 2's own (a cursor loop). `endless = True`: past the last
customer, every page is empty and still names a next one (a listing that never ends).
"""

from __future__ import annotations

import base64
import hmac
import json

from .server import ApiError, Query, Reply, StandIn

API_KEY = "pat_standin0000loyaltylion0000key1"


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset, "direction": "next"}).encode()).decode().rstrip("=")


def _offset(cursor: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"])
    except (ValueError, KeyError, TypeError):
        raise ApiError(400, {"error": {"message": "Invalid cursor"}}) from None


class LoyaltyLionStandIn(StandIn):
    name = "loyaltylion"

    def __init__(self, customers: list[dict] | None = None, api_key: str = API_KEY, **kwargs) -> None:
        self.customers = list(customers or [])
        self.api_key = api_key
        self.loop = self.endless = False
        super().__init__(**kwargs)

    def routes(self):
        return [("GET", "/v2/customers", lambda params, query: self.list_customers(query))]

    def authorized(self, headers) -> bool:
        given = headers.get("Authorization") or ""
        return hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode())

    def unauthorized(self) -> Reply:
        return 401, {"error": {"message": "Authentication is required"}}

    def list_customers(self, query: Query) -> Reply:
        try:
            limit = int(query.get("limit", 100))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 500:
            raise ApiError(400, {"error": {"message": "Invalid request", "details": {"limit": "1 to 500"}}})
        offset = _offset(query["cursor"]) if query.get("cursor") else 0
        page = self.customers[offset:offset + limit]
        more = offset + limit < len(self.customers) or self.endless
        nxt = _cursor(offset + limit) if more else None
        if self.loop and offset >= limit:
            nxt = query["cursor"]
        prev = _cursor(max(offset - limit, 0)) if offset else None
        links = ", ".join(f'<{self.base_url}/v2/customers?cursor={c}>; rel="{rel}"'
                          for rel, c in (("prev", prev), ("next", nxt)) if c)
        return 200, {"customers": page, "cursor": {"prev": prev, "next": nxt}}, ({"Link": links} if links else {})
