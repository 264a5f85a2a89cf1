"""program.yaml `source.pull`: refused at load, with the reason, wherever a pull cannot work."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from loyalty_pipeline.ingest.pull.run import resolve
from loyalty_pipeline.program import ProgramError, load_program
from loyalty_pipeline_tests.ingest.helpers import program_for


def load(tmp_path: Path, platform: str, **pull):
    return load_program(program_for(tmp_path, platform, pull={"enabled": True, **pull}))


@pytest.mark.parametrize(("platform", "pull", "problem"), [
    ("yotpo", {}, r"yotpo cannot be pulled: Yotpo Loyalty & Referrals documents no listing of its customers"),
    ("canonical", {}, r"canonical has no API to pull from \(platforms with one: loyaltylion, voucherify\)"),
    ("voucherify", {}, r"voucherify needs campaign_id"),
    ("voucherify", {"campaign_id": "camp_1", "api_version": "v2"}, r"voucherify v2 cannot be pulled: .*BETA"),
    ("loyaltylion", {"campaign_id": "camp_1"}, r"campaign_id mean\(s\) nothing to loyaltylion"),
    ("loyaltylion", {"page_size": 501}, r"page_size 501: loyaltylion serves at most 500 per page"),
    ("loyaltylion", {"api_version": "v1"}, r"api_version 'v1' is not loyaltylion's \(known: v2\)"),
    ("loyaltylion", {"time": 2300}, r"source\.pull\.time: .*quoted local time"),
])
def test_a_pull_that_cannot_work_is_refused_when_the_program_loads(tmp_path: Path, platform: str, pull: dict,
                                                                   problem: str):
    with pytest.raises(ProgramError, match=problem):
        load(tmp_path, platform, **pull)


def test_a_credential_pasted_in_place_of_its_variables_name_is_refused_and_never_repeated(tmp_path: Path):
    key = "pat_e1c752f1b5cd8b743148a586e573b679"
    with pytest.raises(ProgramError) as info:
        load(tmp_path, "loyaltylion", api_key_env=key)
    assert "expected the NAME of an environment variable" in str(info.value)
    # Nor in the traceback Dagster or a shell would show (the ValidationError that quotes it is not chained).
    assert key not in "".join(traceback.format_exception(info.value))


def test_unset_settings_take_the_platforms_documented_defaults(tmp_path: Path):
    settings = resolve(load(tmp_path, "voucherify", campaign_id="camp_1"))
    assert (settings.base_url, settings.api_version, settings.page_size, settings.requests_per_second) == (
        "https://api.voucherify.io", "v1", 100, 1.5)
    settings = resolve(load(tmp_path, "loyaltylion", deadline_minutes=5))
    assert (settings.base_url, settings.page_size, settings.requests_per_second, settings.deadline_s) == (
        "https://api.loyaltylion.com", 500, 10.0, 300)
    # Off by default: a program without source.pull never pulls.
    assert load_program(program_for(tmp_path, "loyaltylion")).source.pull.enabled is False
