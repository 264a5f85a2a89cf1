"""Voucherify Loyalty v1's members, customers and member tiers, as its API reference documents them
(ingest/pull/voucherify.py cites the pages): `X-App-Id` / `X-App-Token`, `limit` 1..100, `page` at most 100
(members) or 99 (customers), `order=created_at`, `created_at[after]` (members), `starting_after` +
`has_more` (customers), list envelopes `{"object": "list", "data_ref", <data_ref>, "total"}`, and
`{"code", "key", "message", "details"}` error bodies.

It serves members given as the adapter reads them (ingest/fixtures/vendors/voucherify_v1: each member
with its `customer` and `tiers` joined): the listing serves each member without them, as the API does,
the customers listing the joined customers, and the tiers route each member's tiers list.
"""

from __future__ import annotations

import hmac

from .server import ApiError, Query, Reply, StandIn

APP_ID = "standin-app-id-0000-voucherify"
APP_TOKEN = "standin-app-token-0000-voucherify-secret"


def _error(status: int, key: str, message: str, details: str) -> ApiError:
    return ApiError(status, {"code": status, "key": key, "message": message, "details": details,
                             "request_id": "v-0000000000000000"})


class VoucherifyStandIn(StandIn):
    name = "voucherify"

    def __init__(self, members: list[dict] | None = None, *, campaign_id: str = "camp_standin",
                 app_id: str = APP_ID, app_token: str = APP_TOKEN, members_max_page: int = 100, **kwargs) -> None:
        self.campaign_id, self.app_id, self.app_token = campaign_id, app_id, app_token
        self.members_max_page = members_max_page
        self.load(members or [])
        super().__init__(**kwargs)

    def load(self, joined: list[dict]) -> None:
        """Serve these members (each with its `customer` and `tiers`), in created_at order."""
        self.members = sorted(({k: v for k, v in m.items() if k not in ("customer", "tiers")} for m in joined),
                              key=lambda m: m.get("created_at") or "")
        # A listed customer carries its created_at (the listing's example does; the webhook's subset, which
        # the fixtures join, does not): the member's stands in for it.
        customers = {m["customer"]["id"]: {"created_at": m.get("created_at"), **m["customer"]}
                     for m in joined if m.get("customer")}
        self.customers = sorted(customers.values(), key=lambda c: (c.get("created_at") or "", c["id"]))
        self.tiers = {m["id"]: m["tiers"] for m in joined if "tiers" in m}

    def routes(self):
        return [
            ("GET", "/v1/loyalties/{campaign}/members", lambda p, q: self.list_members(p[0], q)),
            ("GET", "/v1/customers", lambda p, q: self.list_customers(q)),
            ("GET", "/v1/loyalties/members/{member}/tiers", lambda p, q: self.member_tiers(p[0])),
        ]

    def authorized(self, headers) -> bool:
        return (hmac.compare_digest((headers.get("X-App-Id") or "").encode(), self.app_id.encode())
                and hmac.compare_digest((headers.get("X-App-Token") or "").encode(), self.app_token.encode()))

    def unauthorized(self) -> Reply:
        return 401, _error(401, "unauthorized", "Unauthorized", "Invalid X-App-Id or X-App-Token").body

    @staticmethod
    def _int(query: Query, name: str, default: int, top: int) -> int:
        try:
            value = int(query.get(name, default))
        except ValueError:
            value = 0
        if not 1 <= value <= top:
            raise _error(400, "invalid_payload", "Invalid Payload", f"{name} must be between 1 and {top}")
        return value

    def list_members(self, campaign: str, query: Query) -> Reply:
        if campaign != self.campaign_id:
            raise _error(404, "not_found", "Resource not found", f"Cannot find campaign with id {campaign}")
        limit = self._int(query, "limit", 10, 100)
        page = self._int(query, "page", 1, self.members_max_page)
        after = query.get("created_at[after]")
        rows = [m for m in self.members if not after or (m.get("created_at") or "") > after]
        if query.get("order") == "-created_at":
            rows.reverse()
        return 200, {"object": "list", "data_ref": "vouchers", "vouchers": rows[(page - 1) * limit:page * limit],
                     "total": len(rows)}

    def list_customers(self, query: Query) -> Reply:
        limit = self._int(query, "limit", 10, 100)
        page = self._int(query, "page", 1, 99)
        rows = self.customers
        if after := query.get("starting_after"):
            rows = [c for c in rows if (c.get("created_at") or "") > after]
        served = rows[(page - 1) * limit:page * limit]
        return 200, {"object": "list", "data_ref": "customers", "customers": served, "total": len(self.customers),
                     "has_more": len(rows) > page * limit}

    def member_tiers(self, member: str) -> Reply:
        if member not in self.tiers:
            raise _error(404, "not_found", "Resource not found", f"Cannot find voucher with id {member}")
        return 200, self.tiers[member]
