"""The one way the pipeline opens an HTTP client to an API that gets a credential: the credential in
headers only, no redirect followed (it would re-send the credential to wherever it points), JSON
accepted, a pool as large as the requests in flight."""

from __future__ import annotations

import httpx

USER_AGENT = "loyalty-pipeline/0.1"


def api_client(base_url: str, headers: dict[str, str], *, timeout_s: float, connect_timeout_s: float,
               concurrency: int, transport: httpx.BaseTransport | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=base_url,
        headers={**headers, "Accept": "application/json", "User-Agent": USER_AGENT},
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(max_connections=concurrency + 2, max_keepalive_connections=concurrency + 2),
        follow_redirects=False,
        transport=transport,
    )
