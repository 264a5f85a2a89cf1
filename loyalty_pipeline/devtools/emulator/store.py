"""The emulator's state and behaviour: custom data definitions and records, event types, triggers and
their histories, contacts, and the injected faults (rate limiting, 5xx, lost responses).

In-memory, one lock: every `Store` method expects the caller to hold `lock` (server.py does).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import random
import threading
import time
from dataclasses import dataclass

from .contract import (
    DEFINITION_KEYS,
    EVENT_KEYS,
    FIELD_COERCION,
    HISTORY_PARAMS,
    HISTORY_SETTINGS,
    TRIGGER_CONTACT_KEYS,
    TRIGGER_KEYS,
    VISITOR_KEYS,
    ApiError,
    Columns,
    Json,
    Query,
    Reply,
    as_int,
    as_text,
    check_event_properties,
    check_fields,
    check_payload,
    check_relationships,
    contact_key,
    error_body,
    event_slots,
    fields_param,
    is_int,
    name_key,
    now_iso,
    optional_str,
    page_params,
    query_listing,
    record_resolver,
    reject_extra,
    require_object,
    select,
    type_error,
)

EMULATOR_API_KEY = "emulator-local-key-0000"


@dataclass
class EmulatorConfig:
    """Limits and fault injection; every fault is off by default. Change at runtime via configure()."""

    rate_limit_rps: float = 0.0  # token refill per second; 0 disables rate limiting
    rate_limit_burst: int = 10  # bucket capacity
    error_rate: float = 0.0  # fraction of /v1 requests answered 500/502/503 before any processing
    latency_ms: int = 0  # added to every /v1 request
    lose_response_rate: float = 0.0  # fraction of writes applied, then the connection closed unanswered
    max_records_per_call: int = 20  # Unknown #1
    strict_contacts: bool = False  # only contacts seeded via /_emulator/contacts resolve (Unknown #8)
    seed: int | None = None  # seeds the fault RNG so runs are reproducible


class Store:
    """All emulator state. Every method expects the caller to hold `lock`."""

    def __init__(self, api_key: str, config: EmulatorConfig) -> None:
        self.lock = threading.Lock()
        self.api_key = api_key
        self.config = EmulatorConfig()
        self.configure(dataclasses.asdict(config))
        self.reset()

    def reset(self) -> None:
        self.definitions: dict[int, dict[str, Json]] = {}
        self.records: dict[int, list[dict[str, Json]]] = {}
        self.record_keys: dict[int, dict[str, dict[str, Json]]] = {}  # unique-key JSON -> row
        self.record_ids: dict[int, int] = {}  # last auto-increment record id per definition
        self.deleted_records: dict[int, list[dict[str, Json]]] = {}  # rows as they were when bulk-deleted
        self.events: dict[str, dict[str, Json]] = {}
        self.histories: list[dict[str, Json]] = []
        self.contacts: dict[int, dict[str, Json]] = {}
        self.contact_index: dict[tuple[str, str], int] = {}
        self.requests: dict[str, dict[str, Json]] = {}
        self.last_ids = {"definition": 0, "event": 0, "history": 0, "contact": 1000}
        self._fill_bucket()

    # -- config and faults ---------------------------------------------------------------------------

    def configure(self, changes: dict[str, Json]) -> dict[str, Json]:
        known = {f.name for f in dataclasses.fields(EmulatorConfig)}
        if unknown := sorted(set(changes) - known):
            raise ApiError(400, f"unknown config keys: {unknown}")
        new = dataclasses.replace(self.config, **changes)
        checks = {
            "rate_limit_rps": isinstance(new.rate_limit_rps, int | float) and new.rate_limit_rps >= 0,
            "rate_limit_burst": is_int(new.rate_limit_burst) and new.rate_limit_burst >= 1,
            "error_rate": isinstance(new.error_rate, int | float) and 0 <= new.error_rate <= 1,
            "latency_ms": isinstance(new.latency_ms, int | float) and new.latency_ms >= 0,
            "lose_response_rate": isinstance(new.lose_response_rate, int | float)
            and 0 <= new.lose_response_rate <= 1,
            "max_records_per_call": is_int(new.max_records_per_call) and new.max_records_per_call >= 1,
            "strict_contacts": isinstance(new.strict_contacts, bool),
            "seed": new.seed is None or is_int(new.seed),
        }
        if bad := [key for key, ok in checks.items() if not ok]:
            raise ApiError(400, f"invalid config values: {bad}")
        self.config = new
        if "seed" in changes or not hasattr(self, "rng"):
            self.rng = random.Random(new.seed)
        if {"rate_limit_rps", "rate_limit_burst"} & changes.keys():
            self._fill_bucket()
        return dataclasses.asdict(new)

    def _fill_bucket(self) -> None:
        self.tokens, self.bucket_at = float(self.config.rate_limit_burst), time.monotonic()

    def admit(self, is_write: bool) -> tuple[tuple[int, Json, dict[str, str]] | None, bool]:
        """Injected faults for one /v1 request: (fault reply or None, lose the response?)."""
        cfg = self.config
        if cfg.rate_limit_rps > 0:
            now = time.monotonic()
            refill = (now - self.bucket_at) * cfg.rate_limit_rps
            self.tokens, self.bucket_at = min(cfg.rate_limit_burst, self.tokens + refill), now
            if self.tokens < 1:
                retry_after = max(1, math.ceil((1 - self.tokens) / cfg.rate_limit_rps))
                body = error_body(429, "ThrottlerException: Too Many Requests")
                return (429, body, {"Retry-After": str(retry_after)}), False
            self.tokens -= 1
        # Draw only when a fault is enabled so enabling one fault does not shift another's sequence.
        if cfg.error_rate > 0 and self.rng.random() < cfg.error_rate:
            status = self.rng.choice((500, 502, 503))
            return (status, error_body(status, "Internal server error"), {}), False
        lose = is_write and cfg.lose_response_rate > 0 and self.rng.random() < cfg.lose_response_rate
        return None, lose

    def count(self, route: str, outcome: int | str) -> None:
        counter = self.requests.setdefault(route, {"total": 0, "statuses": {}, "lost": 0})
        counter["total"] += 1
        if outcome == "lost":
            counter["lost"] += 1
        else:
            counter["statuses"][str(outcome)] = counter["statuses"].get(str(outcome), 0) + 1

    # -- contacts --------------------------------------------------------------------------------------

    def _find_contact(self, idents: dict[str, Json]) -> int | None:
        for by, value in idents.items():
            if by == "id_contact":
                if value in self.contacts:
                    return value
            elif (found := self.contact_index.get(contact_key(by, value))) is not None:
                return found
        return None

    def _add_contact(self, idents: dict[str, Json]) -> dict[str, Json]:
        id_contact = idents.get("id_contact")
        if id_contact is None:
            self.last_ids["contact"] += 1
            id_contact = self.last_ids["contact"]
        self.last_ids["contact"] = max(self.last_ids["contact"], id_contact)
        contact = self.contacts.setdefault(id_contact, {"id_contact": id_contact})
        for by in ("id_customer", "email", "phone"):
            if idents.get(by) not in (None, ""):
                contact[by] = idents[by]
                self.contact_index[contact_key(by, idents[by])] = id_contact
        return contact

    def resolve_contact(self, idents: dict[str, Json]) -> int | None:
        """Known contact id, else (outside strict mode) a newly created one: same identifiers, same id."""
        found = self._find_contact(idents)
        if found is None and not self.config.strict_contacts:
            found = self._add_contact(idents)["id_contact"]
        return found

    def seed_contacts(self, contacts: Json) -> list[dict[str, Json]]:
        if not isinstance(contacts, list):
            raise ApiError(400, "body must be an array of contacts")
        allowed = frozenset({"id_contact", "id_customer", "email", "phone"})
        for i, contact in enumerate(contacts):
            reject_extra(require_object(contact, f"contacts[{i}]"), allowed)
            if contact.get("id_contact") is not None and not is_int(contact["id_contact"]):
                raise ApiError(400, f"contacts[{i}].id_contact must be an integer")
        seeded = []
        for contact in contacts:
            idents = {k: v for k, v in contact.items() if v not in (None, "")}
            known = self._find_contact(idents)
            seeded.append(self._add_contact({**idents, "id_contact": known} if known else idents))
        return copy.deepcopy(seeded)

    # -- custom data definitions -----------------------------------------------------------------------

    def _definition(self, raw_id: str, allow_deleted: bool = False) -> dict[str, Json]:
        definition = self.definitions.get(int(raw_id)) if raw_id.isdigit() else None
        if definition is None or (definition["status"] == "deleted" and not allow_deleted):
            raise ApiError(400, "Custom data definition not found")  # 400, not 404, like the real API
        return definition

    def _check_name(self, name: Json, exclude_id: int | None = None) -> str:
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, "name must be a non-empty string")
        key = name_key(name)
        for other in self.definitions.values():
            if other["status"] != "deleted" and other["id_definition"] != exclude_id:
                if name_key(other["name"]) == key:
                    raise ApiError(400, "custom data definition name is already used.")
        return name

    def _custom_ids(self) -> set[str]:
        return {str(i) for i, d in self.definitions.items() if d["status"] != "deleted"}

    def create_definition(self, body: Json) -> Reply:
        body = require_object(body, "body")
        reject_extra(body, DEFINITION_KEYS)
        name = self._check_name(body.get("name"))
        description = optional_str(body, "description")
        if not body.get("fields"):
            raise ApiError(400, "fields must be a non-empty array")
        fields = check_fields(body["fields"], set())
        names = {f["name"] for f in fields}
        unique_keys = body.get("unique_keys") or []
        if not isinstance(unique_keys, list) or not all(isinstance(k, str) for k in unique_keys):
            raise ApiError(400, "unique_keys must be an array of field names")
        if missing := [k for k in unique_keys if k not in names]:
            raise ApiError(400, f"unique_keys {missing} are not fields of the definition")
        relationships = check_relationships(
            body.get("relationships") or [], names, set(), self._custom_ids()
        )
        self.last_ids["definition"] += 1
        id_definition, now = self.last_ids["definition"], now_iso()
        definition = {
            "id_definition": id_definition,
            "name": name,
            "description": description,
            "unique_keys": unique_keys,
            "fields": fields,
            "relationships": relationships,
            "status": "active",
            "created_at": now,
            "updated_at": now,
        }
        self.definitions[id_definition] = definition
        self.records[id_definition], self.record_keys[id_definition] = [], {}
        self.record_ids[id_definition], self.deleted_records[id_definition] = 0, []
        return 200, {"statusCode": 200, "data": copy.deepcopy(definition)}

    def list_definitions(self, query: Query) -> Reply:
        # Listings stringify ids, as observed on the real API.
        items = [{**d, "id_definition": str(d["id_definition"])} for d in self.definitions.values()]
        columns = {"id_definition": as_text, "name": as_text, "status": as_text, "description": as_text,
                   "created_at": as_text, "updated_at": as_text, "fields": as_text, "relationships": as_text,
                   "unique_keys": as_text}
        return query_listing(query, items, columns)

    def get_definition(self, raw_id: str) -> Reply:
        return 200, {"statusCode": 200, "data": copy.deepcopy(self._definition(raw_id))}

    def extend_definition(self, raw_id: str, body: Json) -> Reply:
        definition = self._definition(raw_id)
        body = require_object(body, "body")
        reject_extra(body, DEFINITION_KEYS - {"unique_keys"})
        # Validate everything before mutating so a 400 leaves the definition untouched.
        name = definition["name"]
        if "name" in body:
            name = self._check_name(body["name"], exclude_id=definition["id_definition"])
        description = (
            optional_str(body, "description") if "description" in body else definition["description"]
        )
        taken = {f["name"] for f in definition["fields"]}
        new_fields = check_fields(body.get("fields") or [], taken)
        sources = {r["sourceField"] for r in definition["relationships"]}
        new_relationships = check_relationships(
            body.get("relationships") or [], taken, sources, self._custom_ids()
        )
        # Append-only; old records read the new fields as null (rows are rendered from the field list).
        definition.update(
            name=name,
            description=description,
            fields=definition["fields"] + new_fields,
            relationships=definition["relationships"] + new_relationships,
            updated_at=now_iso(),
        )
        return 200, {"statusCode": 200, "data": copy.deepcopy(definition)}

    def set_status(self, raw_id: str, status: str) -> Reply:
        definition = self._definition(raw_id)
        definition.update(status=status, updated_at=now_iso())
        return 200, {"statusCode": 200, "data": copy.deepcopy(definition)}

    def delete_definition(self, raw_id: str) -> Reply:
        definition = self._definition(raw_id, allow_deleted=True)  # deleting twice is a 200
        if definition["status"] != "deleted":
            definition.update(status="deleted", updated_at=now_iso())
        return 200, {"statusCode": 200, "data": copy.deepcopy(definition)}

    # -- custom data records ---------------------------------------------------------------------------

    def _check_record(self, definition: dict[str, Json], item: Json) -> tuple[dict[str, Json], list[Json]]:
        """Validated, contact-resolved values of one record, or its errors (Unknown #2)."""
        if not isinstance(item, dict):
            return {}, [{"field": None, "message": "record must be an object"}]
        specs = {f["name"]: f for f in definition["fields"]}
        contact_fields = {
            r["sourceField"]
            for r in definition["relationships"]
            if r["targetSchemaType"] == "system" and r["targetSchema"] == "contacts"
        }
        errors: list[Json] = []
        values: dict[str, Json] = {}
        resolvers: dict[str, dict[str, Json]] = {}
        for name, spec in specs.items():
            value = item.get(name)
            if value is None:
                if spec["required"]:
                    errors.append({"field": name, "message": "is required"})
                elif name in item:
                    values[name] = None  # an explicit null clears the column on upsert
                continue
            if name in contact_fields:
                idents, error = record_resolver(value)
                if idents:
                    resolvers[name] = idents
            else:
                error = type_error(spec["type"], value, spec.get("options"))
                values[name] = value
            if error:
                errors.append({"field": name, "message": error})
        if errors:
            return {}, errors
        # Resolve last so an otherwise invalid item never creates a contact.
        for name, idents in resolvers.items():
            id_contact = self.resolve_contact(idents)
            if id_contact is None:
                by, value = next(iter(idents.items()))
                errors.append({"field": name, "message": f"contact not found ({by}={value})"})
            values[name] = id_contact
        return ({}, errors) if errors else (values, [])

    def _upsert(self, definition: dict[str, Json], values: dict[str, Json]) -> None:
        id_definition, now = definition["id_definition"], now_iso()
        rows, by_key = self.records[id_definition], self.record_keys[id_definition]
        key = (
            json.dumps([values.get(k) for k in definition["unique_keys"]])
            if definition["unique_keys"]
            else None
        )
        if key is not None and key in by_key:
            row = by_key[key]
            row["fields"].update(values)
            row["updated_at"] = now
            return
        self.record_ids[id_definition] += 1  # auto-increment: an id is never reused, even after a delete
        row = {"id": self.record_ids[id_definition], "fields": dict(values), "created_at": now, "updated_at": now}
        rows.append(row)
        if key is not None:
            by_key[key] = row

    def save_records(self, raw_id: str, body: Json) -> Reply:
        definition = self._definition(raw_id)
        if not isinstance(body, list):
            raise ApiError(400, "body must be a JSON array of records")
        limit = self.config.max_records_per_call
        if len(body) > limit:
            raise ApiError(400, f"too many records in one call: {len(body)} (max {limit})")
        if not body:
            raise ApiError(400, "body must be a non-empty array of records")
        if definition["status"] != "active":
            raise ApiError(400, "custom data definition is not active")
        fields = {f["name"] for f in definition["fields"]}
        for index, item in enumerate(body):  # strict bodies: an undeclared property refuses the request
            if isinstance(item, dict):
                reject_extra(item, fields, f"[{index}].")
        accepted, rejected = [], []
        for index, item in enumerate(body):
            values, errors = self._check_record(definition, item)
            if errors:
                rejected.append({"index": index, "payload": item, "errors": errors})
            else:
                accepted.append(values)
        if not accepted:
            raise ApiError(
                400,
                "all records are invalid",
                sent_count=0,
                rejected_count=len(rejected),
                rejected_items=rejected,
            )
        for values in accepted:  # array order: the last duplicate of a unique key wins (Unknown #16)
            self._upsert(definition, values)
        return 200, {
            "statusCode": 200,
            "sent_count": len(accepted),
            "rejected_count": len(rejected),
            "rejected_items": rejected,
        }

    def _render_rows(self, definition: dict[str, Json]) -> list[dict[str, Json]]:
        names = [f["name"] for f in definition["fields"]]
        return [
            {
                "id": row["id"],
                **{n: row["fields"].get(n) for n in names},
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
            }
            for row in self.records[definition["id_definition"]]
        ]

    def list_records(self, raw_id: str, query: Query) -> Reply:
        """listCustomDataRecords: creation order by default; filters/order/fields on the record's columns."""
        definition = self._definition(raw_id)
        columns: Columns = {"id": as_int, "created_at": as_text, "updated_at": as_text}
        for spec in definition["fields"]:
            columns[spec["name"]] = FIELD_COERCION.get(spec["type"], as_text)
        return query_listing(query, self._render_rows(definition), columns)

    def bulk_delete_records(self, raw_id: str, body: Json) -> Reply:
        """bulkDeleteCustomDataRecords: an array of record ids; unknown ids skipped (idempotent)."""
        definition = self._definition(raw_id)
        if not isinstance(body, list):
            raise ApiError(400, "body must be a JSON array of record ids")
        limit = self.config.max_records_per_call
        if len(body) > limit:
            raise ApiError(400, f"too many record ids in one call: {len(body)} (max {limit})")
        if not body:
            raise ApiError(400, "body must be a non-empty array of record ids")
        if definition["status"] != "active":
            raise ApiError(400, "custom data definition is not active")
        ids, rejected = set(), []
        for index, value in enumerate(body):
            if is_int(value) and value > 0 or isinstance(value, str) and value.isdigit() and int(value) > 0:
                ids.add(int(value))
            else:
                rejected.append({"index": index, "payload": value,
                                 "errors": [{"field": None, "message": "must be a positive integer record id"}]})
        if not ids:
            raise ApiError(400, "all record ids are invalid", sent_count=0, rejected_count=len(rejected),
                           rejected_items=rejected)
        id_definition = definition["id_definition"]
        gone = [row for row in self.records[id_definition] if row["id"] in ids]
        if gone:
            rendered = {r["id"]: r for r in self._render_rows(definition)}
            self.deleted_records[id_definition] += [rendered[row["id"]] for row in gone]
            self.records[id_definition] = [row for row in self.records[id_definition] if row["id"] not in ids]
            keys = self.record_keys[id_definition]
            for key in [k for k, row in keys.items() if row["id"] in ids]:
                del keys[key]
        return 200, {"statusCode": 200, "sent_count": len(body) - len(rejected), "rejected_count": len(rejected),
                     "rejected_items": rejected}

    # -- events ----------------------------------------------------------------------------------------

    def create_event(self, body: Json) -> Reply:
        body = require_object(body, "body")
        reject_extra(body, EVENT_KEYS)
        name, code_name = body.get("name"), body.get("code_name")
        name_ok = isinstance(name, str) and name.strip()
        i18n_ok = isinstance(name, dict) and name and all(isinstance(v, str) for v in name.values())
        if not (name_ok or i18n_ok):
            raise ApiError(400, "name must be a string or a map of translations")
        if not isinstance(code_name, str) or not code_name.strip():
            raise ApiError(400, "code_name must be a non-empty string")
        properties = check_event_properties(body.get("properties") or {})
        if code_name in self.events:
            raise ApiError(409, "already exists")
        self.last_ids["event"] += 1
        event = {
            "id_event": self.last_ids["event"],
            "name": name,
            "code_name": code_name,
            "properties": properties,
            "created_at": now_iso(),
        }
        self.events[code_name] = event
        return 200, {"statusCode": 200, "data": copy.deepcopy(event)}

    def list_events(self, query: Query) -> Reply:
        items = [{**e, "id_event": str(e["id_event"])} for e in self.events.values()]
        columns = {"id_event": as_text, "name": as_text, "code_name": as_text, "created_at": as_text,
                   "properties": as_text}
        return query_listing(query, items, columns)

    def trigger_event(self, code_name: str, body: Json) -> Reply:
        event = self.events.get(code_name)
        if event is None:
            raise ApiError(400, f"event {code_name!r} not found")
        body = require_object(body, "body")
        reject_extra(body, TRIGGER_KEYS)
        contact = require_object(body["contact"], "contact") if body.get("contact") is not None else {}
        visitor = require_object(body["visitor"], "visitor") if body.get("visitor") is not None else {}
        reject_extra(contact, TRIGGER_CONTACT_KEYS, "contact.")
        reject_extra(visitor, VISITOR_KEYS, "visitor.")
        for key in ("email", "phone"):
            optional_str(contact, key, "contact.")
        for where, target in (("contact", contact), ("visitor", visitor)):
            if target.get("id") is not None and not is_int(target["id"]):
                raise ApiError(400, f"{where}.id must be a number (ShopiMind's id)")
        idents = {k: contact[k] for k in ("email", "phone") if contact.get(k) not in (None, "")}
        if contact.get("id") is not None:
            idents["id_contact"] = contact["id"]
        if not idents and visitor.get("id") is None:
            raise ApiError(400, "contact (id, email or phone) or visitor.id is required")
        slots = event_slots(event["properties"])
        check_payload("metaData", body.get("metaData"), slots["metaData"])
        check_payload("customData", body.get("customData"), slots["customData"])
        check_payload("contact.customData", contact.get("customData"), slots["contact.customData"])
        check_payload("visitor.customData", visitor.get("customData"), slots["visitor.customData"])
        id_contact = self.resolve_contact(idents) if idents else None
        self.last_ids["history"] += 1
        # Unknown contact: accepted (async semantics) but logged as such (Unknown #7).
        self.histories.append(
            {
                "id": self.last_ids["history"],
                "code_name": code_name,
                "date_creation": now_iso(),
                "contact": copy.deepcopy(body.get("contact")),
                "visitor": copy.deepcopy(body.get("visitor")),
                "id_contact": id_contact,
                "payload": {
                    "metaData": copy.deepcopy(body.get("metaData") or {}),
                    "customData": copy.deepcopy(body.get("customData") or {}),
                },
                "status": "contact_not_found" if idents and id_contact is None else "processed",
            }
        )
        return 200, {"statusCode": 200, "data": {"code_name": code_name, "queued": True}}

    def list_histories(self, query: Query) -> Reply:
        try:
            settings = json.loads(query.get("settings", ["{}"])[0])
        except ValueError:
            raise ApiError(400, "settings must be URL-encoded JSON") from None
        if unknown := sorted(set(query) - HISTORY_PARAMS):
            raise ApiError(400, f"query parameter {unknown[0]!r} should not exist")
        settings = require_object(settings, "settings")
        reject_extra(settings, HISTORY_SETTINGS, "settings.")
        limit, offset = page_params(settings.get("limit"), settings.get("offset"))
        filters = settings.get("filter") or []
        order = settings.get("order") or [{"field": "date_creation", "type": "desc"}]
        order = order if isinstance(order, list) else [order]
        # id breaks ties between rows of the same millisecond, in the direction of the first key.
        rows = sorted(self.histories, key=lambda r: r["id"],
                      reverse=isinstance(order[0], dict) and order[0].get("type", "asc") == "desc")
        columns = {"id": as_int, "id_contact": as_int, "code_name": as_text, "date_creation": as_text,
                   "status": as_text}
        return 200, select(rows, columns, filters=filters if isinstance(filters, list) else [filters],
                            order=order, fields=fields_param(query), limit=limit, offset=offset,
                            filter_param="filter")

    # -- inspection ------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Json]:
        triggered = {code_name: 0 for code_name in self.events}
        for row in self.histories:
            triggered[row["code_name"]] = triggered.get(row["code_name"], 0) + 1
        return copy.deepcopy(
            {
                "definitions": list(self.definitions.values()),
                "records": {str(i): self._render_rows(d) for i, d in self.definitions.items()},
                "deleted_records": {str(i): rows for i, rows in self.deleted_records.items()},
                "events": list(self.events.values()),
                "triggered": triggered,
                "histories": self.histories,
                "contacts": list(self.contacts.values()),
                "requests": self.requests,
                "config": dataclasses.asdict(self.config),
            }
        )
