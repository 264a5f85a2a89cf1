"""Voucherify Loyalty v1: a campaign's members with the two joins the adapter reads
(ingest/platforms/voucherify.py): each member's customer under `customer`, its tiers list under `tiers`.

As the API reference documents it (docs.voucherify.io; voucherifyio/voucherify-openapi):
- List Members, `GET /v1/loyalties/{campaignId}/members` (reference/list-members): `limit` 1..100,
  `page` (at most 100), `order=created_at`, `created_at[after]`; the answer is
  `{"object": "list", "data_ref": "vouchers", "vouchers": [...], "total"}`. A member (a loyalty card)
  names its customer by `holder_id` only.
- List Customers, `GET /v1/customers` (api-reference/customers/list-customers): `limit` 1..100, `page`
  at most 99, `order=created_at` with `starting_after` (a created_at) and `has_more`. One listing joins
  every member's customer: a hundred customers a request, where `GET /v1/customers/{id}` would take one
  request per member.
- List Member's Loyalty Tiers, `GET /v1/loyalties/members/{memberId}/tiers` (reference/list-member-loyalty-tier,
  memberId = the card's id): `{"object": "list", "data_ref": "data", "data": [...], "total"}`. No listing
  gives the tiers of many members, so this is one request per member (docs/pull.md counts the cost).
- Authentication: the `X-App-Id` and `X-App-Token` headers; limits (docs/limits): 100 requests a minute on
  Business plans, 2,000 on Organization plans, and a monthly total.

Both listings are walked 99 pages at a time (`_windowed`), then from just before the last created_at
read. The staged files (members, customers, tiers: one tiers line per member line, in order) are
joined in DuckDB into the export, each member line extended with `"customer"` and `"tiers"` as served
(a member whose customer is not listed gets no `customer`: the ingest quarantines that row).
"""

from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from ...tempfiles import temp_path
from ..encoding import plain_path
from ..platforms import voucherify
from ..readers import lines_reader, quote
from .client import PullClient, PullError
from .listing import Page, Phase, Settings, objects
from .staging import Staging

NAME = voucherify.NAME
MEMBERS = "/v1/loyalties/{campaign}/members"
CUSTOMERS = "/v1/customers"
TIERS = "/v1/loyalties/members/{member}/tiers"
MAX_PAGE = 99  # past it, the members listing continues from the last created_at
CONCURRENCY = 4  # member tiers requests in flight (all under the client's rate limit)


def headers(credentials: dict[str, str]) -> dict[str, str]:
    return {"X-App-Id": credentials["app_id_env"], "X-App-Token": credentials["app_token_env"]}


def _just_before(instant: str, what: str) -> str:
    try:
        when = dt.datetime.fromisoformat(instant).astimezone(dt.UTC) - dt.timedelta(milliseconds=1)
    except ValueError:
        raise PullError(f"{what}: cannot continue the listing from created_at {instant!r}") from None
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _windowed(path: str, after: str, key: str | None, settings: Settings):
    """A listing in created_at order, walked in windows of MAX_PAGE pages: the next window starts just
    before the last instant read (`after`: the API's "created after" parameter) and skips the objects
    already read at that instant, so that none is lost or doubled whether the API reads it as strict or
    not. (More than a window of objects created in one millisecond would come back as a cursor loop.)"""

    def fetch(client: PullClient, cursor: dict | None, page: int, staging: Staging) -> Page:
        at = cursor or {"page": 1, "after": None, "skip": [], "tail": None}
        what = f"page {page} of GET {path}"
        params = {"limit": settings.page_size, "page": at["page"], "order": "created_at",
                  **({after: at["after"]} if at["after"] else {})}
        body, _ = client.get(path, params, what=what)
        items = objects(body, key or str(body.get("data_ref")), what)
        kept = [i for i in items if i.get("id") not in at["skip"]]
        if not items or not body.get("has_more", len(items) == settings.page_size):
            return Page(kept, None)
        last = items[-1].get("created_at")
        if not last:
            raise PullError(f"{what}: the page's last object has no created_at to continue the listing from")
        tail = at["tail"] if at["tail"] and at["tail"]["at"] == last else {"at": last, "ids": []}
        tail = {"at": last, "ids": tail["ids"] + [i.get("id") for i in items if i.get("created_at") == last]}
        if at["page"] < MAX_PAGE:
            return Page(kept, {**at, "page": at["page"] + 1, "tail": tail})
        return Page(kept, {"page": 1, "after": _just_before(last, what), "skip": tail["ids"], "tail": None})

    return fetch


def _tiers(settings: Settings):
    def fetch(client: PullClient, cursor: dict | None, page: int, staging: Staging) -> Page:
        """The tiers of the next `page_size` staged members: one line each, in the members' order
        (`null` for a member without an id)."""
        offset = (cursor or {}).get("offset", 0)
        with staging.path("members").open("rb") as fh:
            fh.seek(offset)
            lines = [fh.readline() for _ in range(settings.page_size)]
            lines = [line for line in lines if line]
            offset, at_end = fh.tell(), not fh.read(1)

        def tiers(line: bytes) -> dict | None:
            member = json.loads(line).get("id")
            if not member:
                return None
            path = TIERS.format(member=member)
            return client.get(path, what=f"page {page} of member tiers: GET {path}")[0]

        with ThreadPoolExecutor(CONCURRENCY) as pool:
            found = list(pool.map(tiers, lines))
        return Page(found, None if at_end else {"offset": offset})

    return fetch


def phases(settings: Settings) -> list[Phase]:
    members = MEMBERS.format(campaign=settings.campaign_id)
    return [Phase("members", _windowed(members, "created_at[after]", None, settings)),
            Phase("customers", _windowed(CUSTOMERS, "starting_after", "customers", settings)),
            Phase("tiers", _tiers(settings))]


def build(staging: Staging, settings: Settings) -> tuple[Path, int]:
    """The members, each extended with its customer and its tiers list (the texts as staged), in DuckDB."""
    out = temp_path(staging.path("export"))
    # DuckDB reads a path as a pattern: an exports root such as `ex*` is read through a plain alias.
    members, customers, tiers = (plain_path(staging.path(name)) for name in ("members", "customers", "tiers"))
    with duckdb.connect() as con:
        con.execute(f"""
            COPY (
                WITH m AS (SELECT row_number() OVER () AS n, line FROM {lines_reader(members)}),
                     t AS (SELECT row_number() OVER () AS n, line FROM {lines_reader(tiers)}),
                     c AS (SELECT line ->> '$.id' AS id, any_value(line) AS line
                           FROM {lines_reader(customers)} GROUP BY ALL)
                SELECT CASE WHEN m.line = '{{}}' THEN m.line ELSE
                    left(m.line, -1)
                    || CASE WHEN c.line IS NULL THEN '' ELSE ', "customer": ' || c.line END
                    || CASE WHEN t.line IS NULL OR t.line = 'null' THEN '' ELSE ', "tiers": ' || t.line END
                    || '}}' END
                FROM m LEFT JOIN t USING (n) LEFT JOIN c ON c.id = m.line ->> '$.holder_id'
                ORDER BY m.n
            ) TO {quote(str(out))} (FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIM '\x01')""")
    return out, staging.state("members").rows
