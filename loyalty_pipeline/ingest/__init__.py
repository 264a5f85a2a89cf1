"""Stage 1, ingest: the day's export files → raw tables (raw_accounts, raw_activities, export_files).

platforms/ holds one adapter per loyalty platform (and the registry of them); readers.py,
encoding.py, files.py, jsonl.py and columns.py are the reading machinery they share; steps.py
is the step (`ingest_export`), sql/ its SQL, assets.py its Dagster asset (`loyalty_export`).
"""
