"""Stage 2, snapshots: raw rows → one validated row per member per day (snapshots) + quarantine, and the
day-over-day deltas (account_deltas). steps.py holds the steps, sql/ their SQL, assets.py the Dagster
assets with the checks that guard everything downstream."""
