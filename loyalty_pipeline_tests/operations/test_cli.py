"""`loyalty-pipeline run` says why it cannot run or why a day failed, in terms ops can act on."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from loyalty_pipeline.cli import main
from loyalty_pipeline.devtools.emulator import Emulator
from loyalty_pipeline.outbound.shopimind.resources import KEY_ENV
from loyalty_pipeline.partitions import daily_partitions
from loyalty_pipeline_tests.harness import account
from loyalty_pipeline_tests.outbound.shopimind.helpers import delivery_pipeline

D1 = "2026-03-01"


def test_a_day_that_is_no_partition_is_refused_in_one_line(capsys: pytest.CaptureFixture):
    """It used to print a DagsterUnknownPartitionError traceback."""
    first, last = daily_partitions.get_first_partition_key(), daily_partitions.get_last_partition_key()
    for start, end in (("2099-01-01", "2099-01-01"), ("2024-12-31", "2025-01-02")):
        assert main(["run", "--start", start, "--end", end]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err == (f"loyalty-pipeline run: cannot run {start}: the days that can run are {first} … {last} "
                       "(partitions_start … yesterday in Europe/Paris)\n")
    assert main(["run", "--start", "2025-03-02", "--end", "2025-03-01"]) == 2
    assert capsys.readouterr().err == "loyalty-pipeline run: --start 2025-03-02 is after --end 2025-03-01\n"


def test_a_failed_day_shows_the_cause_of_an_error_that_is_no_dg_failure(tmp_path: Path, instance: dg.DagsterInstance,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capfd: pytest.CaptureFixture):
    """An OSError deep in a step (here: the outbound folder is a file) used to print only
    'Error occurred while executing op "reelevant_datasource":'."""
    with Emulator() as emulator:
        monkeypatch.setenv(KEY_ENV, emulator.api_key)
        pipe = delivery_pipeline(tmp_path, emulator, today="2026-03-02")
        pipe.outbound.write_text("not a folder")
        pipe.defs = pipe.build()
        pipe.write_accounts(D1, [account("C1")])
        # `loyalty-pipeline run` on this pipeline's definitions and instance
        monkeypatch.setattr("loyalty_pipeline.definitions.defs", pipe.defs)
        monkeypatch.setattr("loyalty_pipeline.operations.instance.get_instance", lambda: instance)
        assert main(["run", "--start", D1, "--end", D1]) == 1
    out, err = capfd.readouterr()  # what the terminal shows, Dagster's console logger included
    assert "Stack Trace" not in err and "STEP_FAILURE" not in err  # the UI has them; the shell gets the cause
    assert f"{D1}  FAILED" in out
    failed = [line for line in out.splitlines() if line.startswith("    ")]
    assert failed == [f"    reelevant_datasource: NotADirectoryError: [Errno 20] Not a directory: "
                      f"'{pipe.outbound / 'reelevant'}'"], out


def test_an_invalid_program_is_said_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture):
    broken = tmp_path / "program.yaml"
    broken.write_text("timezone: Mars/Olympus\n")
    monkeypatch.setenv("LOYALTY_PROGRAM", str(broken))
    assert main(["pull"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"loyalty-pipeline pull: {broken}") and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
