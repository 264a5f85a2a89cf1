"""The stored payloads are checked against the catalogue's models (derive._validate_day): a batch
that is what the models write passes, and any payload that is not fails the day naming its event,
wherever it sits among valid ones (batches are validated whole, the offender found row by row)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from loyalty_pipeline.events import derive
from loyalty_pipeline.warehouse.connection import connect

DAY = dt.date(2026, 3, 2)
EARNED = "loyalty.points_earned"


def _store(con, rows: list[tuple[str, str, str]]) -> None:
    con.executemany("INSERT INTO loyalty_events VALUES (?, ?, ?, NULL, ?, '', ?, 'pending')",
                    [(key, DAY, f"C{i}", code, metadata) for i, (key, code, metadata) in enumerate(rows)])


def _earned(i: int) -> str:
    return json.dumps({"points_amount": i + 1, "reason": "purchase", "new_balance": i}, separators=(",", ":"))


@pytest.fixture
def con(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(derive, "_VALIDATE_BATCH", 7)  # several batches per type
    con = connect(tmp_path / "w.duckdb")
    _store(con, [(f"key{i:04d}", EARNED, _earned(i)) for i in range(40)]
           + [("keyenrol", "loyalty.enrolled", '{"points_balance":3}'),
              ("keyexpiry", "loyalty.points_expiring", '{"points_at_risk":5,"expiry_date":"2026-04-01"}')])
    yield con
    con.close()


def test_canonical_payloads_pass(con):
    derive._validate_day(con, DAY)


@pytest.mark.parametrize(("metadata", "message"), [
    ('{"tier":null,"points_balance":3}', 'is not {"points_balance":3}'),        # a null field is omitted
    ('{"points_balance":3,"tier":"Gold"}', 'is not {"tier":"Gold","points_balance":3}'),  # field order
    ('{"points_balance":"3"}', 'is not {"points_balance":3}'),                   # the type as written
    ('{"points_balance":3,"event_key":"x"}', "invalid metadata"),                 # a field the model lacks
])
def test_a_payload_that_is_not_the_models_fails_the_day_naming_it(con, metadata, message):
    _store(con, [(f"key{i:04d}x", EARNED, _earned(i)) for i in range(5)]
           + [("badbadbadbad0", "loyalty.enrolled", metadata)])
    with pytest.raises(derive.EventDerivationError, match="loyalty.enrolled badbadbadbad") as raised:
        derive._validate_day(con, DAY)
    assert message in str(raised.value)


def test_the_offender_is_found_in_the_middle_of_a_batch(con):
    con.execute("UPDATE loyalty_events SET metadata = $m WHERE event_key = 'key0017'",
                {"m": '{"points_amount":0,"reason":"purchase","new_balance":1}'})  # points_amount must be > 0
    with pytest.raises(derive.EventDerivationError, match=f"{EARNED} key0017: invalid metadata"):
        derive._validate_day(con, DAY)
