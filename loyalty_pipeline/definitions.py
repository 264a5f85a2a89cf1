"""The one Definitions object: each stage's assets and checks, operations' jobs, schedules, sensors and
freshness checks, and the resources.

The code location reads program.yaml once (partitions.py: LOCATION_PROGRAM); the schedule and the
freshness checks are built from that Program here. Runs get theirs from the `program` resource.
"""

from __future__ import annotations

import dagster as dg

from . import operations, settings
from .events import assets as events
from .ingest import assets as ingest
from .ingest.pull import assets as api_pull
from .outbound.reelevant import assets as reelevant
from .outbound.resources import OutboundResource
from .outbound.shopimind import assets as shopimind
from .outbound.shopimind.resources import ShopiMindResource
from .partitions import LOCATION_PROGRAM
from .program import Program, ProgramResource
from .snapshots import assets as snapshots
from .warehouse.resources import WarehouseResource

STAGES = [api_pull, ingest, snapshots, events, reelevant, shopimind]  # in the order data walks
ASSETS = dg.load_assets_from_modules(STAGES)
LOCATION_PULLS = LOCATION_PROGRAM.source.pull.enabled
OPERATIONS = operations.build(ASSETS, LOCATION_PROGRAM, pull=LOCATION_PULLS)


def _assets(pull: bool) -> list:
    """The API pull's asset only where the program pulls: elsewhere it could only fail, and the UI's
    "Materialize all" over a range of days would fail the backfill with it (docs/pull.md)."""
    return ASSETS if pull else [a for a in ASSETS if not (isinstance(a, dg.AssetsDefinition)
                                                          and api_pull.PULL_ASSET in a.keys)]


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


def build_defs(resources: dict | None = None, program: Program | None = None,
               pull: bool | None = None) -> dg.Definitions:
    """`program`: another Program than the location's for the schedule time and the freshness deadline
    (the partitions, built when the stages are defined, stay the location's). `pull`: whether the API
    pull's asset, job and schedule are there; by default, whether that program's source.pull is enabled."""
    pull = (program or LOCATION_PROGRAM).source.pull.enabled if pull is None else pull
    ops = OPERATIONS if program is None and pull == LOCATION_PULLS else operations.build(
        ASSETS, program or LOCATION_PROGRAM, pull=pull)
    return dg.Definitions(
        assets=_assets(pull),
        asset_checks=[*dg.load_asset_checks_from_modules(STAGES), *ops.freshness_checks],
        jobs=ops.jobs,
        schedules=ops.schedules,
        sensors=ops.sensors,
        # Every step that touches the warehouse holds the one `duckdb` pool slot, so steps never overlap:
        # one process per run instead of one per step (seconds of imports each) makes backfills faster.
        executor=dg.in_process_executor,
        resources={**default_resources(), **(resources or {})},
    )


defs = build_defs()
