"""The DuckDB warehouse every stage writes: connections (one writer), the schema as numbered migrations,
step fingerprints (reuse of unchanged days), the analysts' read path, and its Dagster resource."""
