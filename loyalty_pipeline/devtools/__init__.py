"""Development tools, never imported by the pipeline (loyalty_pipeline_tests/test_layout.py checks it):
the ShopiMind emulator, the export simulator, the benchmark, the demo, and their CLI `loyalty-devtools`."""
