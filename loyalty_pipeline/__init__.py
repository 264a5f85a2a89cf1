"""Daily loyalty-program exports → DuckDB snapshots, deltas and events → ShopiMind and Reelevant.

The stages, in the order data walks (each with its steps, its sql/ and its Dagster assets.py):
ingest/ (the export → raw tables; platforms/ holds one adapter per platform, pull/ fetches today's export
from the platform's API) → snapshots/ (validation, quarantine, deltas) → events/ (the catalogue and its
derivation) → outbound/ (shopimind/, reelevant/).
Shared by all: program.py, settings.py, partitions.py, run_tags.py, processes.py, tempfiles.py, httpapi/
(the HTTP clients' one retry policy and secret scrubber) and warehouse/ (connection, migrations,
fingerprints, the analysts' files). definitions.py assembles the one Definitions; operations/ runs it day
after day; cli.py is `loyalty-pipeline`. devtools/ (emulator, platform API stand-ins, simulator,
benchmark, demo: `loyalty-devtools`) is never imported by the rest (test_layout.py).
"""
