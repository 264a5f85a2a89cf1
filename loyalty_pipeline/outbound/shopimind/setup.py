"""Idempotent bootstrap: the LoyaltyAccount definition and the event types, found or created.

It is what makes pointing the pipeline at a new ShopiMind shop, or a freshly started emulator, just
work. A definition or event type that exists with an incompatible shape stops the run with a message
saying what differs, instead of letting every record or trigger be rejected one by one.

It is cached per destination in table `shopimind_setup`: the definition id, and a sha256 of what was
declared (the definition body; each event type's properties). `ensure_setup_cached` makes no request
when that record matches what the program declares now, re-runs only the parts whose hash differs
(a new event type: one request), and re-runs a part from scratch when delivery proves the cache wrong
(ShopiMind answers that the definition or an event type is not there: `force=True`).
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import duckdb

from ...warehouse.connection import transaction
from .client import Result, ShopiMindClient, ShopiMindError
from .models import LOYALTY_ACCOUNT, CustomDataDefinition, EventDeclaration, read_int, read_listing

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


def _unexpected(result: Result, what: str, problem: str) -> ShopiMindError:
    """A 2xx setup cannot use: what was called, what came back (scrubbed excerpt), what is missing."""
    return ShopiMindError(f"ShopiMind setup: {what}: {result.describe()} ({problem}). Is SHOPIMIND_BASE_URL "
                          "the ShopiMind API, with nothing answering in its place?")


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a list in an answer (fields, relationships...); nothing when it is not a list."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _list_all(client: ShopiMindClient, path: str, what: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        result = client.get(path, {"limit": PAGE, "offset": offset})
        page = read_listing(_require(result, what))
        if page is None:
            raise _unexpected(result, what, "not a listing {data: [...], meta: {pagination}}")
        items += page.items
        if not page.more:
            return items
        offset += page.size


def _definition_id(item: dict[str, Any]) -> int:
    id_definition = read_int(item.get("id_definition", item.get("id")))  # listings stringify ids
    if id_definition is None:
        raise ShopiMindError(f"ShopiMind setup: definition {str(item.get('name'))[:100]!r} is listed with no "
                             f"readable id ({str(item.get('id_definition', item.get('id')))[:50]!r})")
    return id_definition


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
        what = f"creating definition {wanted.name}"
        body = _require(created, what)
        data = body.get("data") if isinstance(body, dict) else None
        id_definition = read_int(data.get("id_definition", data.get("id"))) if isinstance(data, dict) else None
        if id_definition is None:
            raise _unexpected(created, what, "no id_definition in its data")
        return id_definition, "created"
    found.sort(key=lambda d: (d.get("status") != "active", _definition_id(d)))
    current = found[0]
    id_definition, action = _definition_id(current), "found"
    _check_compatible(current, wanted)
    have = {str(f.get("name")) for f in _objects(current.get("fields"))}
    missing = [f.model_dump() for f in wanted.fields if f.name not in have]
    have_rel = {str(r.get("sourceField", r.get("source_field"))) for r in _objects(current.get("relationships"))}
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
    if keys is not None and (not isinstance(keys, list) or sorted(map(str, keys)) != sorted(wanted.unique_keys)):
        problems.append(f"unique_keys are {str(keys)[:100]}, expected {wanted.unique_keys}")
    types = {str(f.get("name")): f.get("type") for f in _objects(current.get("fields"))}
    for f in wanted.fields:
        if f.name in types and types[f.name] != f.type:
            problems.append(f"field {f.name} is {types[f.name]}, expected {f.type}")
    for rel in _objects(current.get("relationships")):
        source = rel.get("sourceField", rel.get("source_field"))
        target = rel.get("targetSchema", rel.get("target_schema"))
        for mine in wanted.relationships:
            if source == mine.sourceField and str(target) != mine.targetSchema:
                problems.append(f"relationship on {source} targets {target}, expected {mine.targetSchema}")
    if problems:
        raise ShopiMindError(
            f"ShopiMind definition {current.get('name')!r} (id {current.get('id_definition')}) exists but is "
            f"incompatible: {'; '.join(problems)}. Fix or delete it in ShopiMind, then re-run.")


def ensure_event_types(client: ShopiMindClient, event_types: list[EventDeclaration]) -> dict[str, str]:
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
        declared = {str(e.get("code_name")): e for e in _list_all(client, "/v1/events", "listing event types")}
        problems = [p for e in existing for p in _event_problems(e, declared.get(e.code_name))]
        if problems:
            raise ShopiMindError("ShopiMind event types exist with another metaData schema: "
                                 + "; ".join(problems) + ". Update them in ShopiMind (PATCH /v1/events), "
                                 "then re-run.")
    return actions


def _event_problems(wanted: EventDeclaration, current: dict[str, Any] | None) -> list[str]:
    if current is None:
        return [f"{wanted.code_name}: answered 'exists' but is not listed"]
    properties = current.get("properties")
    declared = _objects(properties.get("metaData") if isinstance(properties, dict) else None)
    theirs = {str(f.get("name")): f for f in declared}
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


def ensure_setup(client: ShopiMindClient, event_types: list[EventDeclaration]) -> SetupResult:
    id_definition, action = ensure_definition(client)
    return SetupResult(id_definition, action, ensure_event_types(client, event_types))


# -- what was declared, as hashes: a change in the program re-runs (only) the part that changed ----------

def _sha256(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def definition_hash(wanted: CustomDataDefinition = LOYALTY_ACCOUNT) -> str:
    """sha256 of the definition body setup creates or completes."""
    return _sha256(wanted.model_dump())


def event_type_hash(event_type: EventDeclaration) -> str:
    """sha256 of an event type's declared properties (its metaData schema)."""
    return _sha256(event_type.properties)


# -- the warehouse side: table shopimind_setup, one row per destination ------------------------------

@dataclass(frozen=True)
class StoredSetup:
    definition_id: int
    definition_hash: str | None  # None: unknown (recorded without hashes, or invalidated)
    event_hashes: dict[str, str]  # code_name -> event_type_hash when it was declared


def store_setup(con: duckdb.DuckDBPyConnection, destination: str, result: SetupResult, *,
                definition_sha256: str | None = None, event_hashes: dict[str, str] | None = None) -> None:
    """Record a bootstrap. Without hashes the record names what exists but does not vouch for it: the
    next `ensure_setup_cached` re-checks it."""
    hashes = event_hashes or {}
    with transaction(con):
        con.execute("DELETE FROM shopimind_setup WHERE destination = $d", {"d": destination})
        con.execute("INSERT INTO shopimind_setup (destination, definition_name, definition_id, event_types, "
                    "checked_at, definition_hash, event_hashes) VALUES ($d, $name, $id, $events, now(), $dh, $eh)",
                    {"d": destination, "name": LOYALTY_ACCOUNT.name, "id": result.definition_id,
                     "events": sorted(set(result.events) | set(hashes)), "dh": definition_sha256,
                     "eh": json.dumps(hashes, sort_keys=True)})


def stored_setup(con: duckdb.DuckDBPyConnection, destination: str) -> StoredSetup | None:
    """The bootstrap as last recorded for this destination."""
    rows = con.execute("SELECT definition_id, definition_hash, event_hashes FROM shopimind_setup "
                       "WHERE destination = $d", {"d": destination}).fetchall()  # fetchall: no result left open
    if not rows:
        return None
    row = rows[0]
    return StoredSetup(row[0], row[1], json.loads(row[2]) if row[2] else {})


def invalidate_setup(con: duckdb.DuckDBPyConnection, destination: str, *, definition: bool = False,
                     events: bool = False) -> None:
    """Forget that (part of) the bootstrap is in place, so that it is re-run before anything relies on it."""
    if definition:
        con.execute("UPDATE shopimind_setup SET definition_hash = NULL WHERE destination = $d", {"d": destination})
    if events:
        con.execute("UPDATE shopimind_setup SET event_hashes = '{}', event_types = [] WHERE destination = $d",
                    {"d": destination})


@dataclass
class CachedSetup:
    definition_id: int
    definition_action: str  # cached | found | created | extended | activated
    events: dict[str, str] = field(default_factory=dict)  # code_name -> cached | created | exists
    requests: int = 0  # HTTP requests this made (0: everything came from the cache)

    @property
    def summary(self) -> str:
        """For run metadata: `cached`, or what was set up."""
        redone = sorted({a for a in self.events.values() if a != "cached"})
        if self.definition_action == "cached" and not redone:
            return "cached"
        parts = [] if self.definition_action == "cached" else [f"definition {self.definition_action}"]
        if redone:
            parts.append(f"{sum(a != 'cached' for a in self.events.values())} event types ({', '.join(redone)})")
        return "set up: " + ", ".join(parts)


def ensure_setup_cached(con: duckdb.DuckDBPyConnection, client: ShopiMindClient, destination: str,
                        event_types: list[EventDeclaration], *, definition: bool = True, events: bool = True,
                        force: bool = False) -> CachedSetup:
    """The bootstrap of `destination` (the definition and/or `event_types`), from the cache when its
    record matches: no request at all. Re-runs the definition when its hash differs (or nothing is
    recorded: its id is needed either way), and declares the event types whose hash differs. `force`
    re-runs the requested parts whatever the cache says (ShopiMind said they are gone); the cache is
    invalidated first, so that a setup that then fails is re-run by the next run."""
    stored = stored_setup(con, destination)
    if force and stored is not None:
        invalidate_setup(con, destination, definition=definition, events=events)
        stored = stored_setup(con, destination)
    before = client.stats["requests"]
    wanted_definition = definition_hash()
    redo_definition = stored is None or (definition and stored.definition_hash != wanted_definition)
    have = stored.event_hashes if stored else {}
    hashes = {t.code_name: event_type_hash(t) for t in event_types} if events else {}
    redo_events = [t for t in event_types if events and have.get(t.code_name) != hashes[t.code_name]]
    if not redo_definition and not redo_events:
        return CachedSetup(stored.definition_id, "cached", dict.fromkeys(hashes, "cached"))
    # Each part is recorded as soon as it holds (event types refused as incompatible keep a definition
    # just set up); a part not re-run keeps what was recorded (a stale hash stays stale).
    if redo_definition:
        id_definition, action = ensure_definition(client)
        store_setup(con, destination, SetupResult(id_definition, action, {}), definition_sha256=wanted_definition,
                    event_hashes=have)
    else:
        id_definition, action = stored.definition_id, "cached"
    declared = ensure_event_types(client, redo_events) if redo_events else {}
    if redo_events:
        store_setup(con, destination, SetupResult(id_definition, action, {}),
                    definition_sha256=wanted_definition if redo_definition else stored.definition_hash,
                    event_hashes={**have, **{t.code_name: hashes[t.code_name] for t in redo_events}})
    return CachedSetup(id_definition, action, {code: declared.get(code, "cached") for code in hashes},
                       client.stats["requests"] - before)
