"""The one Definitions object: each stage's assets and checks, operations' jobs, schedules and sensors,
and the resources."""

from __future__ import annotations

import dagster as dg

from . import operations, settings
from .events import assets as events
from .ingest import assets as ingest
from .outbound.reelevant import assets as reelevant
from .outbound.resources import OutboundResource
from .outbound.shopimind import assets as shopimind
from .outbound.shopimind.resources import ShopiMindResource
from .program import ProgramResource
from .snapshots import assets as snapshots
from .warehouse.resources import WarehouseResource

STAGES = [ingest, snapshots, events, reelevant, shopimind]  # in the order data walks

# Schedules, sensors, volume and freshness checks. The freshness checks are about "now", not one
# business date: they run in their own job, never in the daily one.
OPERATIONS = operations.build(dg.load_assets_from_modules(STAGES), daily_job_name="daily_job")

daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.checks(OPERATIONS.freshness_check),
    description="Everything for one business date: ingest → snapshot → deltas (→ events → outbound).",
)


def default_resources() -> dict:
    """The embedded defaults: paths under data/ unless LOYALTY_* environment variables say otherwise."""
    return {
        "program": ProgramResource(
            program_path=str(settings.program_path()), exports_dir=str(settings.exports_dir())
        ),
        "warehouse": WarehouseResource(path=str(settings.warehouse_path())),
        "outbound": OutboundResource(dir=str(settings.outbound_dir())),
        "shopimind": ShopiMindResource.from_env(),  # key and URL read from the environment at run time
    }


def build_defs(resources: dict | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=dg.load_assets_from_modules(STAGES),
        asset_checks=[*dg.load_asset_checks_from_modules(STAGES), *OPERATIONS.asset_checks],
        jobs=[daily_job, *OPERATIONS.jobs],
        schedules=OPERATIONS.schedules,
        sensors=OPERATIONS.sensors,
        # Every step that touches the warehouse holds the one `duckdb` pool slot, so steps never overlap:
        # one process per run instead of one per step (seconds of imports each) makes backfills faster.
        executor=dg.in_process_executor,
        resources={**default_resources(), **(resources or {})},
    )


defs = build_defs()
