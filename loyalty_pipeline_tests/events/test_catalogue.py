"""The catalogue: ShopiMind's four loyalty events exactly as its use case declares them, plus ours."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from pydantic import ValidationError

from loyalty_pipeline.events.catalogue import CATALOGUE, EVENT_KEY_FIELD, shopimind_properties, validate_metadata
from loyalty_pipeline.events.derive import sql


def fields(code_name: str) -> list[tuple[str, str, bool]]:
    return [(f["name"], f["type"], f["required"]) for f in shopimind_properties(CATALOGUE[code_name])["metaData"]]


def test_the_four_shopimind_events_keep_their_names_and_types():
    key = ("event_key", "text", False)  # appended to every type, for reconciling uncertain deliveries
    assert fields("loyalty.points_earned") == [
        ("points_amount", "number", True), ("reason", "text", True), ("new_balance", "number", True), key]
    assert fields("loyalty.tier_upgraded") == [("previous_tier", "text", True), ("new_tier", "text", True), key]
    assert fields("loyalty.tier_downgraded") == [
        ("previous_tier", "text", True), ("new_tier", "text", True), ("grace_period_days", "number", False), key]
    assert fields("loyalty.points_expiring") == [("points_at_risk", "number", True), ("expiry_date", "date", True),
                                                 key]
    assert list(CATALOGUE)[:4] == ["loyalty.points_earned", "loyalty.tier_upgraded", "loyalty.tier_downgraded",
                                   "loyalty.points_expiring"]


def test_every_event_type_declares_its_fields_and_the_event_key_last():
    # The catalogue holds exactly the types the derivation writes: derived, so a new type changes no count here.
    assert set(CATALOGUE) == set(re.findall(r"'(loyalty\.\w+)'", sql("events")))
    for event_type in CATALOGUE.values():
        body = shopimind_properties(event_type)
        assert body["metaData"][-1] == EVENT_KEY_FIELD
        assert {f["type"] for f in body["metaData"]} <= {"number", "text", "date", "bool", "decimal"}
    assert fields("loyalty.enrolled")[:2] == [("tier", "text", False), ("points_balance", "number", True)]
    assert fields("loyalty.approaching_tier_upgrade")[2] == ("points_to_next_tier", "number", True)


def test_validate_metadata_is_json_ready_and_strict():
    assert validate_metadata("loyalty.points_expiring", {"points_at_risk": 50, "expiry_date": dt.date(2026, 4, 1)}) \
        == {"points_at_risk": 50, "expiry_date": "2026-04-01"}
    assert validate_metadata("loyalty.enrolled", {"tier": None, "points_balance": 0}) == {"points_balance": 0}
    with pytest.raises(ValidationError):
        validate_metadata("loyalty.tier_upgraded", {"previous_tier": "Bronze"})               # missing field
    with pytest.raises(ValidationError):
        validate_metadata("loyalty.opted_out", {"previous_tier": "Gold", "event_key": "x"})   # not stored
    with pytest.raises(ValidationError):
        validate_metadata("loyalty.points_earned", {"points_amount": 0, "reason": "purchase", "new_balance": 5})
    with pytest.raises(KeyError):
        validate_metadata("loyalty.unknown", {})
