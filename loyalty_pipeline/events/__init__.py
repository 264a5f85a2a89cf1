"""Stage 3, events: the marketing events the day's deltas imply. catalogue.py declares them (metaData
models), derive.py derives them (sql/events.sql), assets.py holds the Dagster asset and its check."""
