"""One registry of platforms, discovered from ingest/platforms/: adding a platform is adding its module.

program.yaml validation, the ingest and the simulator's choices all read the registry, so a platform
the registry holds is usable everywhere without touching anything else."""

from __future__ import annotations

import textwrap
import types
from pathlib import Path

import pytest

import loyalty_pipeline.ingest.platforms as platforms_package
from loyalty_pipeline.devtools import cli as devtools_cli
from loyalty_pipeline.devtools.sample.platforms import WRITERS
from loyalty_pipeline.ingest.adapter import Adapter
from loyalty_pipeline.ingest.platforms import PLATFORMS, adapter, canonical, discover
from loyalty_pipeline.program import ProgramError, load_program
from loyalty_pipeline_tests.harness import Pipeline, account

ACME = textwrap.dedent('''
    """A platform whose exports are canonical files under another name."""
    from loyalty_pipeline.ingest.platforms import canonical

    NAME = "acme"
    EMAIL_IS_KEY = False
    accounts_sql = canonical.accounts_sql
    activities_sql = canonical.activities_sql
''')


def _package(root: Path, name: str, modules: dict[str, str]) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for module, text in modules.items():
        (folder / f"{module}.py").write_text(text)
    return folder


def _program(tmp_path: Path, platform: str) -> Path:
    path = tmp_path / "program.yaml"
    path.write_text(f"source: {{platform: {platform}}}\ntiers: [{{name: Bronze, rank: 1, threshold: 0}}]\n")
    return path


def test_the_registry_holds_every_module_of_the_platforms_folder_by_its_name():
    folder = Path(platforms_package.__file__).parent
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    assert {m.__name__.rsplit(".", 1)[-1] for m in PLATFORMS.values()} == modules
    assert all(isinstance(m, Adapter) and PLATFORMS[m.NAME] is m for m in PLATFORMS.values())
    assert list(PLATFORMS)[0] == "canonical" and {"yotpo", "loyaltylion", "voucherify"} <= set(PLATFORMS)


def test_a_module_dropped_into_a_platforms_package_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = _package(tmp_path, "more_platforms", {"acme": ACME})
    found = discover([str(folder)], "more_platforms")
    assert list(found) == ["acme"] and found["acme"].accounts_sql is canonical.accounts_sql


def test_a_module_that_is_no_adapter_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = _package(tmp_path, "odd_platforms", {"helper": "NAME = 'helper'\n"})
    with pytest.raises(TypeError, match=r"odd_platforms\.helper .* no adapter: it must define NAME, EMAIL_IS_KEY"):
        discover([str(folder)], "odd_platforms")


def test_a_platform_the_registry_holds_is_read_with_nothing_else_changed(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    acme = types.ModuleType("acme")
    exec(ACME, acme.__dict__)
    monkeypatch.setitem(PLATFORMS, "acme", acme)
    program_path = _program(tmp_path, "acme")
    assert load_program(program_path).source.platform == "acme" and adapter("acme") is acme
    pipe = Pipeline(tmp_path, program_path=program_path)
    pipe.write_accounts("2026-03-01", [account("C1"), account("C2", points=50)])
    pipe.run("2026-03-01")
    assert pipe.query("SELECT customer_id FROM snapshots ORDER BY 1") == [("C1",), ("C2",)]
    # The simulator offers only the platforms it has a writer for.
    choices = next(a.choices for a in _subcommand("generate-sample")._actions if a.dest == "platform")
    assert "acme" not in choices and set(choices) == set(PLATFORMS) & set(WRITERS) - {"acme"}


def test_an_unknown_platform_is_refused_naming_the_known_ones(tmp_path: Path):
    known = ", ".join(PLATFORMS)
    assert known.startswith("canonical, ") and "yotpo" in known
    with pytest.raises(ProgramError, match=rf"source\.platform: .*no adapter for platform 'shopify'; known: {known}$"):
        load_program(_program(tmp_path, "shopify"))


def _subcommand(name: str):
    parser = devtools_cli.parser()
    [sub] = [a for a in parser._actions if a.dest == "command"]
    return sub.choices[name]
