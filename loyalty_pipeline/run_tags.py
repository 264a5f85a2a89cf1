"""Run tags that change what a day's steps and checks do (set by ops on a run, read by the assets).

- `loyalty/rebuild=true`: the daily steps reuse a day built from unchanged inputs
  (warehouse/fingerprints.py); this tag rebuilds it anyway (e.g. after restoring rows by hand).
- `loyalty/confirm_volume_change=true`: the volume checks (member count, unknown tiers, event volume)
  pass a change outside their band: ops confirm a legitimate big change (docs/operations.md, "Checks").
"""

from __future__ import annotations

import dagster as dg

REBUILD_TAG = "loyalty/rebuild"
CONFIRM_TAG = "loyalty/confirm_volume_change"
HOW_TO_CONFIRM = (f"if the change is real, re-run the day with run tag {CONFIRM_TAG}=true; "
                  "if the export is incomplete, replace it (the export sensor relaunches the day)")


def rebuild_requested(context: dg.AssetExecutionContext) -> bool:
    return context.run.tags.get(REBUILD_TAG) == "true"


def volume_confirmed(context: dg.AssetCheckExecutionContext) -> bool:
    return context.run.tags.get(CONFIRM_TAG, "").strip().lower() in {"true", "1", "yes"}
