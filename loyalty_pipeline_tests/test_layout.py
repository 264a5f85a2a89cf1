"""The layout shows the pipeline: the import rules, read statically from every module's source (`ast`: fast,
and lazy imports inside functions count as much as the ones at the top).

The package `loyalty_pipeline` is made of
- the stages, in the order data walks: ingest → snapshots → events → outbound;
- the shared infrastructure: settings, program, partitions, run_tags, processes, tempfiles, warehouse, httpapi;
- what assembles and runs them: definitions, cli, operations;
- devtools: the emulator, the simulator, the benchmark, the demo.

Rules:
1. No module outside devtools imports loyalty_pipeline.devtools (nor names it in a string, e.g. `-m …`).
2. A stage imports only the stages before it, itself, and the infrastructure: never a later stage,
   operations, definitions or cli. Within outbound, a destination (outbound/<name>/) does not import
   another destination, and the delivery core (outbound/core/) imports no destination.
3. The infrastructure imports only the infrastructure, with one exception: program.py validates its
   `source` section against what the ingest can read, so it imports ingest.platforms (the registry) and
   ingest.columns; those, and every ingest module they import, import nothing outside ingest.
4. operations, definitions and cli may import everything but devtools.
5. Every module is in one of these groups (a new top-level module or package must be placed here).
6. Lists that grow with the product are written once: no module outside events/ names two or more of the
   catalogue's event types (except devtools/bench/reference.py, which compares only the types it derives),
   and no module outside ingest/platforms/ names two or more platforms (except the simulator's writers,
   devtools/sample/platforms.py). Docstrings do not count.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import loyalty_pipeline
from loyalty_pipeline.events.catalogue import CATALOGUE
from loyalty_pipeline.ingest.platforms import PLATFORMS

ROOT = Path(loyalty_pipeline.__file__).parent
STAGES = ["ingest", "snapshots", "events", "outbound"]
INFRASTRUCTURE = {"settings", "program", "partitions", "run_tags", "processes", "tempfiles", "warehouse", "httpapi"}
ASSEMBLY = {"definitions", "cli", "operations"}
DEVTOOLS = "devtools"
PROGRAM_READS = {"loyalty_pipeline.ingest.platforms", "loyalty_pipeline.ingest.columns"}
OUTBOUND_CORE = "core"  # outbound/core/: the delivery machinery every destination builds on


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


@cache
def imports(module: str) -> frozenset[str]:
    """The loyalty_pipeline modules `module` imports, wherever the import statement stands."""
    path = modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules()}
    return frozenset(m for m in found if m == "loyalty_pipeline" or m.startswith("loyalty_pipeline."))


def group(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    top = parts[1]
    if top in STAGES:
        return "stage"
    if top in INFRASTRUCTURE:
        return "infrastructure"
    if top in ASSEMBLY:
        return "assembly"
    return "devtools" if top == DEVTOOLS else None


def top(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def strings(module: str) -> list[str]:
    """The module's string constants, docstrings left out."""
    tree = ast.parse(modules()[module].read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_rules_read_real_imports():
    # A guard on the reader itself: these imports are known to exist (one of them inside a function).
    assert "loyalty_pipeline.operations.instance" in imports("loyalty_pipeline.cli")
    assert "loyalty_pipeline.ingest.platforms" in imports("loyalty_pipeline.program")
    assert "loyalty_pipeline.warehouse.schema" in imports("loyalty_pipeline.warehouse.connection")
    assert "loyalty_pipeline.ingest.steps" in imports("loyalty_pipeline.ingest.assets")
    assert "loyalty_pipeline.settings" in imports("loyalty_pipeline.definitions")  # `from . import settings`


def test_every_module_has_a_place_in_the_layout():
    assert [m for m in modules() if group(m) is None] == []


def test_nothing_but_devtools_imports_or_runs_devtools():
    product = [m for m in modules() if group(m) != "devtools"]
    offenders = {m: sorted(i for i in imports(m) if top(i) == DEVTOOLS) for m in product}
    named = {m: [s for s in strings(m) if "loyalty_pipeline.devtools" in s] for m in product}
    assert {m: i for m, i in offenders.items() if i} == {}
    assert {m: s for m, s in named.items() if s} == {}


def test_stages_import_only_earlier_stages_and_the_infrastructure():
    wrong = {}
    for module in (m for m in modules() if group(m) == "stage"):
        rank = STAGES.index(top(module))
        bad = [i for i in imports(module) if group(i) in ("assembly", "devtools")
               or (group(i) == "stage" and STAGES.index(top(i)) > rank)]
        if bad:
            wrong[module] = sorted(bad)
    assert wrong == {}


def destination(module: str) -> str | None:
    """outbound.<destination>.<module> → the destination; outbound/core/ is what they share, not one."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "outbound" and parts[2] != OUTBOUND_CORE else None


def test_an_outbound_destination_does_not_import_another():
    wrong = {m: sorted(i for i in imports(m) if destination(i) not in (None, destination(m)))
             for m in modules() if destination(m)}
    assert {m: i for m, i in wrong.items() if i} == {}


def test_the_delivery_core_imports_no_destination():
    core = [m for m in modules() if m.startswith(f"loyalty_pipeline.outbound.{OUTBOUND_CORE}")]
    assert "loyalty_pipeline.outbound.core.ledger" in core and destination("loyalty_pipeline.outbound.shopimind.client")
    wrong = {m: sorted(i for i in imports(m) if destination(i)) for m in core}
    assert {m: i for m, i in wrong.items() if i} == {}


def test_the_infrastructure_imports_no_stage_but_what_program_validates_against():
    wrong = {}
    for module in (m for m in modules() if group(m) == "infrastructure"):
        allowed = PROGRAM_READS if module == "loyalty_pipeline.program" else set()
        bad = [i for i in imports(module) if group(i) not in ("infrastructure", "root") and i not in allowed]
        if bad:
            wrong[module] = sorted(bad)
    assert wrong == {}
    # What program.py reads of the ingest imports nothing outside ingest (no cycle back to the infrastructure).
    seen, todo = set(), list(PROGRAM_READS)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += [i for i in imports(module) if i in modules()]
    assert sorted(m for m in seen if top(m) != "ingest" and group(m) != "root") == []


def test_event_types_and_platforms_are_listed_once():
    event_types, platforms = set(CATALOGUE), set(PLATFORMS)
    allowed_events = ("loyalty_pipeline.events", "loyalty_pipeline.devtools.bench.reference")
    allowed_platforms = ("loyalty_pipeline.ingest.platforms", "loyalty_pipeline.devtools.sample.platforms")
    lists = {}
    for module in modules():
        names = set(strings(module))
        if len(names & event_types) > 1 and not module.startswith(allowed_events):
            lists[module] = sorted(names & event_types)
        if len(names & platforms) > 1 and not module.startswith(allowed_platforms):
            lists[module] = sorted(names & platforms)
    assert lists == {}
