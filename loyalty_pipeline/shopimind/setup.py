"""Idempotent bootstrap: the LoyaltyAccount definition and the event types, found or created.

Run before every delivery (a handful of requests): it is what makes pointing the pipeline at a new
ShopiMind shop, or a freshly started emulator, just work. A definition or event type that exists
with an incompatible shape stops the run with a message saying what differs, instead of letting
every record or trigger be rejected one by one.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any

import duckdb

from .client import Result, ShopiMindClient, ShopiMindError
from .models import LOYALTY_ACCOUNT, CustomDataDefinition, EventType

PAGE = 100  # the API's largest page; above it silently falls back to 10


@dataclass
class SetupResult:
    definition_id: int
    definition_action: str  # found | created | extended | activated
    events: dict[str, str] = field(default_factory=dict)  # code_name -> created | exists


def _name_key(name: str) -> str:
    """How ShopiMind compares definition names: case- and accent-insensitive, trailing spaces ignored."""
    decomposed = unicodedata.normalize("NFKD", name.rstrip(" "))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _require(result: Result, what: str) -> Any:
    if not result.ok:
        raise ShopiMindError(f"ShopiMind setup: {what} failed ({result.outcome}, HTTP {result.status}): "
                             f"{result.error}")
    return result.body


def _list_all(client: ShopiMindClient, path: str, what: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = _require(client.get(path, {"limit": PAGE, "offset": offset}), what)
        page = (body.get("data") or []) if isinstance(body, dict) else []
        items += [item for item in page if isinstance(item, dict)]
        pagination = (body.get("meta") or {}).get("pagination") or {}
        if not page or not pagination.get("has_next_page"):
            return items
        offset += len(page)


def _definition_id(item: dict[str, Any]) -> int:
    return int(item.get("id_definition", item.get("id")))  # listings stringify ids


def ensure_definition(client: ShopiMindClient, wanted: CustomDataDefinition = LOYALTY_ACCOUNT
                      ) -> tuple[int, str]:
    """Find the definition by name (skipping deleted ones, active first, lowest id) or create it;
    add missing fields; refuse an incompatible one."""
    found = [d for d in _list_all(client, "/v1/custom-data-definitions", "listing custom data definitions")
             if _name_key(str(d.get("name", d.get("schema_name", "")))) == _name_key(wanted.name)
             and d.get("status") != "deleted"]
    if not found:
        created = client.post("/v1/custom-data-definitions", wanted.model_dump())
        if created.status == 400 and "already used" in (created.error or ""):
            return ensure_definition(client, wanted)  # created concurrently since the listing
        data = (_require(created, f"creating definition {wanted.name}") or {}).get("data") or {}
        return _definition_id(data), "created"
    found.sort(key=lambda d: (d.get("status") != "active", _definition_id(d)))
    current = found[0]
    id_definition, action = _definition_id(current), "found"
    _check_compatible(current, wanted)
    have = {f.get("name") for f in current.get("fields") or []}
    missing = [f.model_dump() for f in wanted.fields if f.name not in have]
    have_rel = {r.get("sourceField", r.get("source_field")) for r in current.get("relationships") or []}
    missing_rel = [r.model_dump() for r in wanted.relationships if r.sourceField not in have_rel]
    if missing or missing_rel:
        _require(client.request("PATCH", f"/v1/custom-data-definitions/{id_definition}/extend",
                                json_body={"fields": missing, "relationships": missing_rel}),
                 f"extending definition {id_definition}")
        action = "extended"
    if current.get("status") not in (None, "active"):
        _require(client.request("PATCH", f"/v1/custom-data-definitions/{id_definition}/activate"),
                 f"activating definition {id_definition}")
        action = "activated"
    return id_definition, action


def _check_compatible(current: dict[str, Any], wanted: CustomDataDefinition) -> None:
    problems = []
    keys = current.get("unique_keys")
    if keys is not None and sorted(keys) != sorted(wanted.unique_keys):
        problems.append(f"unique_keys are {keys}, expected {wanted.unique_keys}")
    types = {f.get("name"): f.get("type") for f in current.get("fields") or []}
    for f in wanted.fields:
        if f.name in types and types[f.name] != f.type:
            problems.append(f"field {f.name} is {types[f.name]}, expected {f.type}")
    for rel in current.get("relationships") or []:
        source = rel.get("sourceField", rel.get("source_field"))
        target = rel.get("targetSchema", rel.get("target_schema"))
        for mine in wanted.relationships:
            if source == mine.sourceField and str(target) != mine.targetSchema:
                problems.append(f"relationship on {source} targets {target}, expected {mine.targetSchema}")
    if problems:
        raise ShopiMindError(
            f"ShopiMind definition {current.get('name')!r} (id {current.get('id_definition')}) exists but is "
            f"incompatible: {'; '.join(problems)}. Fix or delete it in ShopiMind, then re-run.")


def ensure_event_types(client: ShopiMindClient, event_types: list[EventType]) -> dict[str, str]:
    """Declare each event type; 409 (or an "already exists" 400) means it is there: check its metaData
    has every field we send, with the same type, and requires nothing we do not send."""
    actions: dict[str, str] = {}
    for event_type in event_types:
        result = client.post("/v1/events", event_type.model_dump())
        if result.ok:
            actions[event_type.code_name] = "created"
        elif result.status == 409 or (result.status == 400 and "already" in (result.error or "").lower()):
            actions[event_type.code_name] = "exists"
        else:
            _require(result, f"declaring event type {event_type.code_name}")
    existing = [e for e in event_types if actions[e.code_name] == "exists"]
    if existing:
        declared = {e.get("code_name"): e for e in _list_all(client, "/v1/events", "listing event types")}
        problems = [p for e in existing for p in _event_problems(e, declared.get(e.code_name))]
        if problems:
            raise ShopiMindError("ShopiMind event types exist with another metaData schema: "
                                 + "; ".join(problems) + ". Update them in ShopiMind (PATCH /v1/events), "
                                 "then re-run.")
    return actions


def _event_problems(wanted: EventType, current: dict[str, Any] | None) -> list[str]:
    if current is None:
        return [f"{wanted.code_name}: answered 'exists' but is not listed"]
    theirs = {f.get("name"): f for f in (current.get("properties") or {}).get("metaData") or []}
    ours = {f["name"]: f for f in wanted.properties.get("metaData") or []}
    problems = []
    for name, spec in ours.items():
        if name not in theirs:
            problems.append(f"{wanted.code_name}: metaData.{name} is not declared")
        elif theirs[name].get("type") != spec["type"]:
            problems.append(f"{wanted.code_name}: metaData.{name} is {theirs[name].get('type')}, "
                            f"expected {spec['type']}")
    for name, spec in theirs.items():
        if spec.get("required") and (name not in ours or not ours[name].get("required")):
            problems.append(f"{wanted.code_name}: metaData.{name} is required there but not always sent")
    return problems


def ensure_setup(client: ShopiMindClient, event_types: list[EventType]) -> SetupResult:
    id_definition, action = ensure_definition(client)
    return SetupResult(id_definition, action, ensure_event_types(client, event_types))


# -- the warehouse side: table shopimind_setup, one row per destination ------------------------------

def store_setup(con: duckdb.DuckDBPyConnection, destination: str, result: SetupResult) -> None:
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM shopimind_setup WHERE destination = $d", {"d": destination})
    con.execute("INSERT INTO shopimind_setup VALUES ($d, $name, $id, $events, now())",
                {"d": destination, "name": LOYALTY_ACCOUNT.name, "id": result.definition_id,
                 "events": sorted(result.events)})
    con.execute("COMMIT")


def stored_setup(con: duckdb.DuckDBPyConnection, destination: str) -> tuple[int, set[str]] | None:
    """(definition id, declared event types) as last bootstrapped at this destination."""
    row = con.execute("SELECT definition_id, event_types FROM shopimind_setup WHERE destination = $d",
                      {"d": destination}).fetchone()
    return (row[0], set(row[1])) if row else None
