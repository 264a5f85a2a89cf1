"""Pulling today's export from the platform's API, when no one drops a file (`source.pull`, docs/pull.md).

The file stays the interface: a pull writes exactly the JSON Lines file the platform's adapter reads,
`<exports>/<today>/<accounts>.jsonl` (+ `<accounts>.manifest.json`), and from there the day is processed
like a dropped file (export sensor, fingerprint, ingest). An API serves the members as they are now, so
only today's business date is ever pulled; the pull is its own asset and job (assets.py), never upstream
of `loyalty_export`, so a backfill never pulls.

- run.py       one pull: today only, credentials from the environment, the listings, publish
- listing.py   what a platform's pull is made of (settings, pages, phases)
- loyaltylion.py, voucherify.py   each platform's listings, as its API reference documents them
- client.py    GETs under the shared retry policy and secret scrubber (httpapi/)
- staging.py   checkpoint and resume within the day, and the export published whole or not at all
- assets.py    the `loyalty_api_pull` asset

Why not dlt's REST client (paginators, auth, retries): docs/pull.md, "Why no dlt".
"""
