"""The `loyalty_api_pull` asset: today's export fetched from the platform's API.

Not partitioned and not upstream of `loyalty_export`: it produces a file, which the export sensor or
the next daily schedule processes like a dropped one. It runs in its own job (`pull_job`, on
`pull_schedule`: operations/), so a backfill of past days never pulls; and it is in the code location
only when the program pulls (definitions.py).
"""

import datetime as dt

import dagster as dg
from pydantic import Field

from ...program import ProgramResource
from .client import PullError
from .run import pull_export

PULL_ASSET = dg.AssetKey("loyalty_api_pull")


class PullConfig(dg.Config):
    date: str | None = Field(default=None, description="business date to pull (ISO); only today can be: "
                                                       "an API has no history. Default: today.")


@dg.asset(
    key=PULL_ASSET,
    group_name="ingest",
    kinds={"api"},
    description="Today's export pulled from the loyalty platform's API (source.pull) into "
                "<exports>/<today>/accounts.jsonl with its manifest; processed like a dropped file.",
)
def loyalty_api_pull(context: dg.AssetExecutionContext, config: PullConfig,
                     program: ProgramResource) -> dg.MaterializeResult:
    today = program.today_date()
    try:
        day = dt.date.fromisoformat(config.date) if config.date else today
    except ValueError as exc:
        raise dg.Failure(description=f"date {config.date!r} is not an ISO date (YYYY-MM-DD)",
                         allow_retries=False) from exc
    try:
        pulled = pull_export(program.load(), program.exports, day, today=today, log=context.log.info)
    except PullError as exc:
        raise dg.Failure(description=f"{day}: {exc}", allow_retries=False) from None
    manifest = pulled.manifest
    return dg.MaterializeResult(
        metadata={
            "business_date": manifest["business_date"],
            "path": dg.MetadataValue.path(str(pulled.path)),
            "rows": manifest["rows"],
            "sha256": manifest["sha256"],
            "platform": manifest["platform"],
            "api_version": manifest["api_version"],
            "base_url": manifest["base_url"],
            "pages": sum(listing["pages"] for listing in manifest["listings"].values()),
            "requests": manifest["requests"],
            "resumed": manifest["resumed"],
        },
        data_version=dg.DataVersion(manifest["sha256"][:16]),
    )
