"""`loyalty-pipeline run` says why it cannot run or why a day failed, in terms ops can act on."""

from __future__ import annotations

import pytest

from loyalty_pipeline.cli import main
from loyalty_pipeline.defs.partitions import daily_partitions


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
