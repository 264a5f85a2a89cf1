"""program.yaml is validated, and its errors name the file and the bad key; a run parses it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_pipeline import program as program_module
from loyalty_pipeline.program import ProgramError, load_program
from loyalty_pipeline.settings import PROJECT_ROOT
from loyalty_pipeline_tests.harness import Pipeline, account, day
from loyalty_pipeline_tests.operations.helpers import checks_of


def test_the_default_program_loads():
    program = load_program(PROJECT_ROOT / "data" / "program.yaml")
    assert [t.name for t in program.ordered_tiers()] == ["Bronze", "Silver", "Gold", "Platinum"]
    assert ("loyal silver", "Silver", 2) in program.tier_alias_rows()
    assert program.expiry_reminder_days == [30, 7, 1]


@pytest.mark.parametrize(("yaml_text", "named"), [
    ("tiers: [{name: A, rank: 1, threshold: 0}]\ntier_bassis: points_balance\n", "tier_bassis"),
    ("tiers: [{name: A, rank: 1, threshold: -5}]\n", "tiers.0.threshold"),
    ("tiers: [{name: A, rank: 1, threshold: 0}]\ntimezone: Mars/Olympus\n", "timezone"),
    ("tiers: [{name: A, rank: 1, threshold: 0}]\nsource: {platform: shopify}\n", "source.platform"),
    ("tiers: [{name: A, rank: 1, threshold: 0, aliases: [x]}, {name: B, rank: 2, threshold: 9, aliases: [X]}]\n",
     "alias 'X' names both A and B"),
    ("tiers: [{name: A, rank: 1, threshold: 0}]\non_leave: archive\n", "on_leave: Input should be 'delete' or 'keep'"),
    ("tiers: [{name: A, rank: 1, threshold: 0}]\nremoval_grace_days: 0\n", "removal_grace_days: Input should be "
     "greater than or equal to 1"),
])
def test_an_invalid_program_names_the_bad_key(tmp_path: Path, yaml_text: str, named: str):
    path = tmp_path / "program.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ProgramError) as err:
        load_program(path)
    assert str(path) in str(err.value) and named in str(err.value)


def test_what_shopimind_does_with_members_who_leave_is_a_program_setting(tmp_path: Path):
    path = tmp_path / "program.yaml"
    path.write_text("tiers: [{name: A, rank: 1, threshold: 0}]\n")
    assert (load_program(path).on_leave, load_program(path).removal_grace_days) == ("delete", 3)  # the seed's meaning
    path.write_text("tiers: [{name: A, rank: 1, threshold: 0}]\non_leave: keep\nremoval_grace_days: 7\n")
    assert (load_program(path).on_leave, load_program(path).removal_grace_days) == ("keep", 7)


def test_a_run_parses_program_yaml_once_and_the_next_run_sees_an_edit(tmp_path: Path, monkeypatch):
    """Every asset and check of a run reads the program: it is parsed once, when the run sets up its
    resources. An edit (here: an alias for a tier name the export uses) applies from the next run."""
    path = tmp_path / "program.yaml"
    path.write_text((PROJECT_ROOT / "data" / "program.yaml").read_text())
    pipe = Pipeline(tmp_path, program_path=path)
    pipe.write_accounts(day(0), [account("C1"), account("C2", points=1500, tier="Argent")])
    parsed = []
    monkeypatch.setattr(program_module, "load_program",
                        lambda p: parsed.append(p) or load_program(p))  # what ProgramResource calls

    first = pipe.run(day(0), expect_success=False)
    assert parsed == [str(path)]
    assert not checks_of(first)["tiers_known"].passed   # 'Argent' is no tier of the program yet

    path.write_text(path.read_text().replace("aliases: [SILVER, ", "aliases: [Argent, SILVER, "))
    second = pipe.run(day(0))
    assert parsed == [str(path)] * 2 and checks_of(second)["tiers_known"].passed
