"""Local ShopiMind API v1 emulator: custom data definitions/records and events over real HTTP.

Stdlib only, in-memory, one lock. Where the public contract is silent it implements exactly the
choices of the "Unknowns" table in shared/reference/shopimind-api.md, and it can inject faults
(rate limiting, 5xx, latency, lost responses) so the pipeline's client is tested against them.
Control/inspection routes live under /_emulator/ and need no API key.
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import json
import logging
import math
import random
import re
import socket
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

log = logging.getLogger(__name__)

Json = Any
Query = dict[str, list[str]]
Reply = tuple[int, Json]

EMULATOR_API_KEY = "emulator-local-key-0000"
DEFINITION_FIELD_TYPES = frozenset(
    {"bool", "text", "longtext", "number", "decimal", "list", "date", "datetime", "json", "geolocation"}
)
EVENT_FIELD_TYPES = frozenset({"bool", "text", "longtext", "number", "decimal", "date", "json"})
SYSTEM_TARGET_FIELDS = {"contacts": "id_contact", "products": "product_id"}
CONTACT_RESOLVERS = ("id_contact", "email", "id_customer")
RESERVED_RECORD_COLUMNS = frozenset({"id", "created_at", "updated_at"})
DEFAULT_PAGE, MAX_PAGE = 10, 100
TEXT_MAX_LENGTH = 255

_DEFINITION_KEYS = frozenset({"name", "description", "unique_keys", "fields", "relationships"})
_FIELD_KEYS = frozenset({"name", "label", "type", "required", "description", "default", "options"})
_RELATIONSHIP_KEYS = frozenset({"sourceField", "targetSchemaType", "targetSchema", "targetField"})
_EVENT_KEYS = frozenset({"name", "code_name", "properties"})
_TRIGGER_KEYS = frozenset({"contact", "visitor", "metaData", "customData"})
# The SDK's trigger type (sdk:src/types/events.ts): contact {id (a number), email, phone, customData}.
_TRIGGER_CONTACT_KEYS = frozenset({"id", "email", "phone", "customData"})
_VISITOR_KEYS = frozenset({"id", "customData"})
# Event type `properties` (Unknown #9): the four validated slots and the target, each field spec typed.
_PROPERTIES_KEYS = frozenset({"target", "metaData", "customData", "contact", "visitor"})
_PROPERTY_SLOT_KEYS = frozenset({"customData"})
_PROPERTY_FIELD_KEYS = frozenset({"name", "type", "required", "description"})


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


class ApiError(Exception):
    """A non-2xx answer; rendered NestJS-style (Unknown #3) with optional extra keys."""

    def __init__(self, status: int, message: str, **extra: Json) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def error_body(status: int, message: str, **extra: Json) -> dict[str, Json]:
    return {"statusCode": status, "message": message, "error": HTTPStatus(status).phrase, **extra}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _name_key(name: str) -> str:
    """Mimic the MySQL collation: case- and accent-insensitive, trailing (not leading) spaces ignored."""
    decomposed = unicodedata.normalize("NFKD", name.rstrip(" "))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _is_iso_date(value: str) -> bool:
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            parse(value)
            return True
        except ValueError:
            pass
    return False


def _is_int(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Json) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def type_error(ftype: str, value: Json, options: list[Json] | None = None) -> str | None:
    """Validate one non-null value per Unknown #10; returns an error message or None."""
    if ftype == "bool":
        ok, expected = isinstance(value, bool), "a boolean"
    elif ftype == "number":
        ok, expected = _is_int(value), "an integer"
    elif ftype == "decimal":
        ok = _is_int(value) or (isinstance(value, float) and math.isfinite(value))
        expected = "a finite number"
    elif ftype == "text":
        ok, expected = (
            isinstance(value, str) and len(value) <= TEXT_MAX_LENGTH,
            "a string of at most 255 chars",
        )
    elif ftype == "longtext":
        ok, expected = isinstance(value, str), "a string"
    elif ftype in ("date", "datetime"):
        ok, expected = isinstance(value, str) and _is_iso_date(value), "an ISO-8601 date"
    elif ftype == "list":
        ok = value in options if options else _is_scalar(value)
        expected = f"one of {options}" if options else "a string or a number"
    elif ftype == "geolocation":
        ok = isinstance(value, dict) and all(_is_scalar(value.get(k)) for k in ("lat", "lng"))
        expected = 'an object {"lat": .., "lng": ..}'
    else:  # json
        ok, expected = True, "JSON"
    return None if ok else f"must be {expected}"


def _object(value: Json, where: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{where} must be an object")
    return value


def _reject_extra(obj: dict[str, Json], allowed: frozenset[str], where: str = "") -> None:
    """Strict bodies: the real controllers refuse unknown properties."""
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ApiError(400, f"property {where}{extra[0]} should not exist")


def _optional_str(obj: dict[str, Json], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{where}{key} must be a string")
    return value


def _check_fields(fields: Json, taken: set[str]) -> list[dict[str, Json]]:
    """Validate definition field specs; `taken` (mutated) holds names already in use."""
    if not isinstance(fields, list):
        raise ApiError(400, "fields must be an array")
    out = []
    for i, spec in enumerate(fields):
        where = f"fields[{i}]."
        _reject_extra(_object(spec, f"fields[{i}]"), _FIELD_KEYS, where)
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, f"{where}name must be a non-empty string")
        if name in taken or name in RESERVED_RECORD_COLUMNS:
            raise ApiError(400, f"field {name!r} already exists")
        if spec.get("type") not in DEFINITION_FIELD_TYPES:
            raise ApiError(400, f"{where}type must be one of {sorted(DEFINITION_FIELD_TYPES)}")
        if not isinstance(spec.get("required", False), bool):
            raise ApiError(400, f"{where}required must be a boolean")
        _optional_str(spec, "label", where)
        _optional_str(spec, "description", where)
        options = spec.get("options")
        if options is not None and (
            spec["type"] != "list" or not isinstance(options, list) or not all(map(_is_scalar, options))
        ):
            raise ApiError(400, f"{where}options must be an array of strings/numbers on a list field")
        taken.add(name)
        out.append({**spec, "required": spec.get("required", False)})
    return out


def _check_relationships(
    relationships: Json, field_names: set[str], sources: set[str], custom_ids: set[str]
) -> list[dict[str, Json]]:
    """Validate relationships; `sources` (mutated) holds source fields that already have one."""
    if not isinstance(relationships, list):
        raise ApiError(400, "relationships must be an array")
    out = []
    for i, rel in enumerate(relationships):
        where = f"relationships[{i}]."
        _reject_extra(_object(rel, f"relationships[{i}]"), _RELATIONSHIP_KEYS, where)
        source, kind, target = rel.get("sourceField"), rel.get("targetSchemaType"), rel.get("targetSchema")
        if source not in field_names:
            raise ApiError(400, f"{where}sourceField {source!r} is not a field of the definition")
        if source in sources:  # an existing relationship cannot be replaced (kit ensure.ts)
            raise ApiError(400, f"a relationship on {source!r} already exists")
        if kind == "system" and target in SYSTEM_TARGET_FIELDS:
            default_target_field = SYSTEM_TARGET_FIELDS[target]
        elif kind == "custom" and str(target) in custom_ids:
            target, default_target_field = str(target), "id"
        else:
            raise ApiError(400, f"{where}targetSchema {target!r} not found for targetSchemaType {kind!r}")
        target_field = rel.get("targetField", default_target_field)
        if not isinstance(target_field, str):
            raise ApiError(400, f"{where}targetField must be a string")
        sources.add(source)
        out.append(
            {
                "sourceField": source,
                "targetSchemaType": kind,
                "targetSchema": target,
                "targetField": target_field,
            }
        )
    return out


def _event_slots(properties: dict[str, Json]) -> dict[str, list[dict[str, Json]]]:
    """The four validated payload slots of an event type (Unknown #9); other keys are ignored."""
    return {
        "metaData": properties.get("metaData") or [],
        "customData": properties.get("customData") or [],
        "contact.customData": (properties.get("contact") or {}).get("customData") or [],
        "visitor.customData": (properties.get("visitor") or {}).get("customData") or [],
    }


def _check_event_properties(properties: Json) -> dict[str, Json]:
    properties = _object(properties, "properties")
    _reject_extra(properties, _PROPERTIES_KEYS, "properties.")
    if properties.get("target") not in (None, "contact", "visitor"):
        raise ApiError(400, "properties.target must be 'contact' or 'visitor'")
    for slot in ("contact", "visitor"):
        if slot in properties:
            _reject_extra(_object(properties[slot], f"properties.{slot}"), _PROPERTY_SLOT_KEYS, f"properties.{slot}.")
    for slot, specs in _event_slots(properties).items():
        if not isinstance(specs, list):
            raise ApiError(400, f"properties.{slot} must be an array")
        for i, spec in enumerate(specs):
            where = f"properties.{slot}[{i}]"
            spec = _object(spec, where)
            _reject_extra(spec, _PROPERTY_FIELD_KEYS, f"{where}.")
            if not isinstance(spec.get("name"), str) or not spec["name"]:
                raise ApiError(400, f"{where}.name must be a non-empty string")
            if spec.get("type") not in EVENT_FIELD_TYPES:
                raise ApiError(400, f"{where}.type must be one of {sorted(EVENT_FIELD_TYPES)}")
            if not isinstance(spec.get("required", False), bool):
                raise ApiError(400, f"{where}.required must be a boolean")
    return properties


def _check_payload(slot: str, data: Json, specs: list[dict[str, Json]]) -> None:
    """Trigger payloads must match the declared slot exactly: required, typed, nothing undeclared."""
    data = {} if data is None else _object(data, slot)
    declared = {spec["name"]: spec for spec in specs}
    for key in data:
        if key not in declared:
            raise ApiError(400, f"{slot}.{key} is not declared for this event")
    for name, spec in declared.items():
        if data.get(name) is None:
            if spec.get("required"):
                raise ApiError(400, f"{slot}.{name} is required")
        elif error := type_error(spec["type"], data[name]):
            raise ApiError(400, f"{slot}.{name} {error}")


def _page_params(limit: Json, offset: Json) -> tuple[int, int]:
    try:
        limit = DEFAULT_PAGE if limit in (None, "") else int(limit)
        offset = 0 if offset in (None, "") else int(offset)
    except (TypeError, ValueError):
        raise ApiError(400, "limit and offset must be integers") from None
    if not 1 <= limit <= MAX_PAGE:
        limit = DEFAULT_PAGE  # observed: a limit above 100 silently falls back to 10 (Unknown #20)
    return limit, max(offset, 0)


def _query_page(query: Query) -> tuple[int, int]:
    return _page_params(query.get("limit", [None])[0], query.get("offset", [None])[0])


def _listing(items: list[Json], limit: int, offset: int) -> dict[str, Json]:
    total = len(items)
    page = offset // limit + 1
    has_next, has_previous = offset + limit < total, offset > 0
    pagination = {
        "total_items": total,
        "items_per_page": limit,
        "total_pages": math.ceil(total / limit),
        "current_page": page,
        "offset": offset,
        "has_previous_page": has_previous,
        "has_next_page": has_next,
        "next_page": page + 1 if has_next else None,
        "previous_page": max(page - 1, 1) if has_previous else None,
    }
    return {
        "statusCode": 200,
        "data": copy.deepcopy(items[offset : offset + limit]),
        "meta": {"pagination": pagination, "generated_at": now_iso()},
    }


# -- listings: one filter/order/projection engine for every listing route (Unknown #17, #20) ---------------

FILTER_OPERATORS = (
    "EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "LESS_THAN",
    "LESS_THAN_OR_EQUAL_TO", "GREATER_THAN", "GREATER_THAN_OR_EQUAL_TO", "IN", "NOT_IN", "LIKE", "BETWEEN",
    "NOT_BETWEEN",
)
_MULTI_VALUE_OPERATORS = frozenset({"IN", "NOT_IN", "BETWEEN", "NOT_BETWEEN"})
_FILTER_KEYS = frozenset({"field", "operator", "values"})
_ORDER_KEYS = frozenset({"field", "type"})
_LISTING_PARAMS = frozenset({"limit", "offset", "order", "fields", "filters"})
_HISTORY_PARAMS = frozenset({"settings", "fields"})
_HISTORY_SETTINGS = frozenset({"limit", "offset", "order", "filter"})

# A listing's columns: name -> how a filter value is read for it (query strings carry text).
Columns = dict[str, Callable[[Json], Json]]


def _as_int(value: Json) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean")
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def _as_number(value: Json) -> float:
    if isinstance(value, bool):
        raise ValueError("boolean")
    return float(value)


def _as_text(value: Json) -> str:
    return str(value).strip()


def _as_bool(value: Json) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("true", "1"):
        return True
    if str(value).strip().lower() in ("false", "0"):
        return False
    raise ValueError("not a boolean")


_FIELD_COERCION = {"number": _as_int, "decimal": _as_number, "bool": _as_bool}


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % any run, _ one character, the rest literal."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)


def _compile_filter(flt: Json, columns: Columns, where: str) -> Callable[[dict[str, Json]], bool]:
    """One filter {field, operator, values}: multi-value operators take an array or a comma string."""
    flt = _object(flt, where)
    _reject_extra(flt, _FILTER_KEYS, f"{where}.")
    field, op, raw = flt.get("field"), flt.get("operator"), flt.get("values")
    if field not in columns:
        raise ApiError(400, f"{where}: cannot filter on field {field!r}")
    if op not in FILTER_OPERATORS:
        raise ApiError(400, f"{where}: unsupported filter operator {op!r}")
    if op in _MULTI_VALUE_OPERATORS:
        items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, list) else [raw]
    else:
        items = raw if isinstance(raw, list) else [raw]
    try:
        values = [columns[field](v) for v in items if v is not None]
    except (TypeError, ValueError):
        raise ApiError(400, f"{where}: bad filter values for {field!r}") from None
    expected = 2 if op in ("BETWEEN", "NOT_BETWEEN") else None if op in _MULTI_VALUE_OPERATORS else 1
    if not values or (expected is not None and len(values) != expected):
        raise ApiError(400, f"{where}: bad filter values for operator {op!r}")
    first = values[0]
    text = str(first)
    like = _like(text) if op == "LIKE" else None
    tests: dict[str, Callable[[Json], bool]] = {
        "EQUALS": lambda v: v == first,
        "NOT_EQUALS": lambda v: v != first,
        "CONTAINS": lambda v: text in str(v),
        "NOT_CONTAINS": lambda v: text not in str(v),
        "STARTS_WITH": lambda v: str(v).startswith(text),
        "ENDS_WITH": lambda v: str(v).endswith(text),
        "LIKE": lambda v: like.fullmatch(str(v)) is not None,
        "IN": lambda v: v in values,
        "NOT_IN": lambda v: v not in values,
        "GREATER_THAN": lambda v: v > first,
        "GREATER_THAN_OR_EQUAL_TO": lambda v: v >= first,
        "LESS_THAN": lambda v: v < first,
        "LESS_THAN_OR_EQUAL_TO": lambda v: v <= first,
        "BETWEEN": lambda v: values[0] <= v <= values[1],
        "NOT_BETWEEN": lambda v: not values[0] <= v <= values[1],
    }
    test, negative = tests[op], op.startswith("NOT_")

    def matches(row: dict[str, Json]) -> bool:
        value = row.get(field)
        if value is None:  # a null column (e.g. id_contact of a visitor trigger) only satisfies NOT_*
            return negative
        try:
            return test(value)
        except TypeError:  # a value of another type than the column's (e.g. a stringified id)
            return negative
    return matches


def _json_param(query: Query, name: str) -> list[Json]:
    """A listing parameter holding objects: URL-encoded JSON (an object or an array), repeatable."""
    items: list[Json] = []
    for raw in query.get(name, []):
        try:
            value = json.loads(raw)
        except ValueError:
            raise ApiError(400, f"{name} must be URL-encoded JSON") from None
        items += value if isinstance(value, list) else [value]
    return items


def _fields_param(query: Query) -> list[str] | None:
    """`fields`: comma-separated or repeated; None = every column."""
    names = [n.strip() for raw in query.get("fields", []) for n in raw.split(",") if n.strip()]
    return names or None


def _select(rows: list[dict[str, Json]], columns: Columns, *, filters: list[Json], order: list[Json],
            fields: list[str] | None, limit: int, offset: int, filter_param: str = "filters") -> dict[str, Json]:
    """Filter, sort, page and project `rows` into the listing envelope (of copies)."""
    predicates = [_compile_filter(f, columns, f"{filter_param}[{i}]") for i, f in enumerate(filters)]
    if unknown := [f for f in fields or [] if f not in columns]:
        raise ApiError(400, f"fields: unknown field {unknown[0]!r}")
    for i, item in enumerate(order):
        _reject_extra(_object(item, f"order[{i}]"), _ORDER_KEYS, f"order[{i}].")
        if item.get("field") not in columns:
            raise ApiError(400, f"order[{i}]: cannot order on field {item.get('field')!r}")
        if item.get("type", "asc") not in ("asc", "desc"):
            raise ApiError(400, f"order[{i}].type must be 'asc' or 'desc'")
    selected = [row for row in rows if all(p(row) for p in predicates)]
    for item in reversed(order):  # stable sorts, least significant key first; nulls first
        selected.sort(key=lambda r, f=item["field"]: (r.get(f) is not None, r.get(f)),
                      reverse=item.get("type", "asc") == "desc")
    if fields:
        selected = [{name: row.get(name) for name in fields} for row in selected]
    return _listing(selected, limit, offset)


def _query_listing(query: Query, rows: list[dict[str, Json]], columns: Columns) -> Reply:
    """A listing whose parameters are query-string ones (definitions, event types, records)."""
    if unknown := sorted(set(query) - _LISTING_PARAMS):
        raise ApiError(400, f"query parameter {unknown[0]!r} should not exist")
    limit, offset = _query_page(query)
    return 200, _select(rows, columns, filters=_json_param(query, "filters"), order=_json_param(query, "order"),
                        fields=_fields_param(query), limit=limit, offset=offset)


def _contact_key(by: str, value: Json) -> tuple[str, str]:
    return by, str(value).strip().lower() if by == "email" else str(value)


def _record_resolver(value: Json) -> tuple[dict[str, Json] | None, str | None]:
    """Parse a contacts relation value: a canonical id, or {"by": .., "value": ..} (Unknown #8)."""
    if _is_int(value):
        return {"id_contact": value}, None
    if isinstance(value, dict) and set(value) == {"by", "value"} and value["by"] in CONTACT_RESOLVERS:
        by, ident = value["by"], value["value"]
        if by == "id_contact" and _is_int(ident):
            return {by: ident}, None
        if by != "id_contact" and _is_scalar(ident) and str(ident).strip():
            return {by: ident}, None
    return None, 'must be a contact id or {"by": "id_contact"|"email"|"id_customer", "value": ...}'


class _Store:
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
            "rate_limit_burst": _is_int(new.rate_limit_burst) and new.rate_limit_burst >= 1,
            "error_rate": isinstance(new.error_rate, int | float) and 0 <= new.error_rate <= 1,
            "latency_ms": isinstance(new.latency_ms, int | float) and new.latency_ms >= 0,
            "lose_response_rate": isinstance(new.lose_response_rate, int | float)
            and 0 <= new.lose_response_rate <= 1,
            "max_records_per_call": _is_int(new.max_records_per_call) and new.max_records_per_call >= 1,
            "strict_contacts": isinstance(new.strict_contacts, bool),
            "seed": new.seed is None or _is_int(new.seed),
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
            elif (found := self.contact_index.get(_contact_key(by, value))) is not None:
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
                self.contact_index[_contact_key(by, idents[by])] = id_contact
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
            _reject_extra(_object(contact, f"contacts[{i}]"), allowed)
            if contact.get("id_contact") is not None and not _is_int(contact["id_contact"]):
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
        key = _name_key(name)
        for other in self.definitions.values():
            if other["status"] != "deleted" and other["id_definition"] != exclude_id:
                if _name_key(other["name"]) == key:
                    raise ApiError(400, "custom data definition name is already used.")
        return name

    def _custom_ids(self) -> set[str]:
        return {str(i) for i, d in self.definitions.items() if d["status"] != "deleted"}

    def create_definition(self, body: Json) -> Reply:
        body = _object(body, "body")
        _reject_extra(body, _DEFINITION_KEYS)
        name = self._check_name(body.get("name"))
        description = _optional_str(body, "description")
        if not body.get("fields"):
            raise ApiError(400, "fields must be a non-empty array")
        fields = _check_fields(body["fields"], set())
        names = {f["name"] for f in fields}
        unique_keys = body.get("unique_keys") or []
        if not isinstance(unique_keys, list) or not all(isinstance(k, str) for k in unique_keys):
            raise ApiError(400, "unique_keys must be an array of field names")
        if missing := [k for k in unique_keys if k not in names]:
            raise ApiError(400, f"unique_keys {missing} are not fields of the definition")
        relationships = _check_relationships(
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
        columns = {"id_definition": _as_text, "name": _as_text, "status": _as_text, "description": _as_text,
                   "created_at": _as_text, "updated_at": _as_text, "fields": _as_text, "relationships": _as_text,
                   "unique_keys": _as_text}
        return _query_listing(query, items, columns)

    def get_definition(self, raw_id: str) -> Reply:
        return 200, {"statusCode": 200, "data": copy.deepcopy(self._definition(raw_id))}

    def extend_definition(self, raw_id: str, body: Json) -> Reply:
        definition = self._definition(raw_id)
        body = _object(body, "body")
        _reject_extra(body, _DEFINITION_KEYS - {"unique_keys"})
        # Validate everything before mutating so a 400 leaves the definition untouched.
        name = definition["name"]
        if "name" in body:
            name = self._check_name(body["name"], exclude_id=definition["id_definition"])
        description = (
            _optional_str(body, "description") if "description" in body else definition["description"]
        )
        taken = {f["name"] for f in definition["fields"]}
        new_fields = _check_fields(body.get("fields") or [], taken)
        sources = {r["sourceField"] for r in definition["relationships"]}
        new_relationships = _check_relationships(
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
                idents, error = _record_resolver(value)
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
                _reject_extra(item, fields, f"[{index}].")
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
        columns: Columns = {"id": _as_int, "created_at": _as_text, "updated_at": _as_text}
        for spec in definition["fields"]:
            columns[spec["name"]] = _FIELD_COERCION.get(spec["type"], _as_text)
        return _query_listing(query, self._render_rows(definition), columns)

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
            if _is_int(value) and value > 0 or isinstance(value, str) and value.isdigit() and int(value) > 0:
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
        body = _object(body, "body")
        _reject_extra(body, _EVENT_KEYS)
        name, code_name = body.get("name"), body.get("code_name")
        name_ok = isinstance(name, str) and name.strip()
        i18n_ok = isinstance(name, dict) and name and all(isinstance(v, str) for v in name.values())
        if not (name_ok or i18n_ok):
            raise ApiError(400, "name must be a string or a map of translations")
        if not isinstance(code_name, str) or not code_name.strip():
            raise ApiError(400, "code_name must be a non-empty string")
        properties = _check_event_properties(body.get("properties") or {})
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
        columns = {"id_event": _as_text, "name": _as_text, "code_name": _as_text, "created_at": _as_text,
                   "properties": _as_text}
        return _query_listing(query, items, columns)

    def trigger_event(self, code_name: str, body: Json) -> Reply:
        event = self.events.get(code_name)
        if event is None:
            raise ApiError(400, f"event {code_name!r} not found")
        body = _object(body, "body")
        _reject_extra(body, _TRIGGER_KEYS)
        contact = _object(body["contact"], "contact") if body.get("contact") is not None else {}
        visitor = _object(body["visitor"], "visitor") if body.get("visitor") is not None else {}
        _reject_extra(contact, _TRIGGER_CONTACT_KEYS, "contact.")
        _reject_extra(visitor, _VISITOR_KEYS, "visitor.")
        for key in ("email", "phone"):
            _optional_str(contact, key, "contact.")
        for where, target in (("contact", contact), ("visitor", visitor)):
            if target.get("id") is not None and not _is_int(target["id"]):
                raise ApiError(400, f"{where}.id must be a number (ShopiMind's id)")
        idents = {k: contact[k] for k in ("email", "phone") if contact.get(k) not in (None, "")}
        if contact.get("id") is not None:
            idents["id_contact"] = contact["id"]
        if not idents and visitor.get("id") is None:
            raise ApiError(400, "contact (id, email or phone) or visitor.id is required")
        slots = _event_slots(event["properties"])
        _check_payload("metaData", body.get("metaData"), slots["metaData"])
        _check_payload("customData", body.get("customData"), slots["customData"])
        _check_payload("contact.customData", contact.get("customData"), slots["contact.customData"])
        _check_payload("visitor.customData", visitor.get("customData"), slots["visitor.customData"])
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
        if unknown := sorted(set(query) - _HISTORY_PARAMS):
            raise ApiError(400, f"query parameter {unknown[0]!r} should not exist")
        settings = _object(settings, "settings")
        _reject_extra(settings, _HISTORY_SETTINGS, "settings.")
        limit, offset = _page_params(settings.get("limit"), settings.get("offset"))
        filters = settings.get("filter") or []
        order = settings.get("order") or [{"field": "date_creation", "type": "desc"}]
        order = order if isinstance(order, list) else [order]
        # id breaks ties between rows of the same millisecond, in the direction of the first key.
        rows = sorted(self.histories, key=lambda r: r["id"],
                      reverse=isinstance(order[0], dict) and order[0].get("type", "asc") == "desc")
        columns = {"id": _as_int, "id_contact": _as_int, "code_name": _as_text, "date_creation": _as_text,
                   "status": _as_text}
        return 200, _select(rows, columns, filters=filters if isinstance(filters, list) else [filters],
                            order=order, fields=_fields_param(query), limit=limit, offset=offset,
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


Handler = Callable[[_Store, tuple[str, ...], Query, Json], Reply]

# The template doubles as the key of the per-route request counters.
_V1_ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/v1/custom-data-definitions", lambda s, p, q, b: s.create_definition(b)),
    ("GET", "/v1/custom-data-definitions", lambda s, p, q, b: s.list_definitions(q)),
    ("GET", "/v1/custom-data-definitions/{id}", lambda s, p, q, b: s.get_definition(p[0])),
    ("PATCH", "/v1/custom-data-definitions/{id}/extend", lambda s, p, q, b: s.extend_definition(p[0], b)),
    ("PATCH", "/v1/custom-data-definitions/{id}/activate", lambda s, p, q, b: s.set_status(p[0], "active")),
    (
        "PATCH",
        "/v1/custom-data-definitions/{id}/deactivate",
        lambda s, p, q, b: s.set_status(p[0], "inactive"),
    ),
    ("DELETE", "/v1/custom-data-definitions/{id}", lambda s, p, q, b: s.delete_definition(p[0])),
    ("POST", "/v1/custom-data-records/{id}", lambda s, p, q, b: s.save_records(p[0], b)),
    ("GET", "/v1/custom-data-records/{id}", lambda s, p, q, b: s.list_records(p[0], q)),
    (
        "POST",
        "/v1/custom-data-records/{id}/bulk-delete",
        lambda s, p, q, b: s.bulk_delete_records(p[0], b),
    ),
    ("POST", "/v1/events", lambda s, p, q, b: s.create_event(b)),
    ("GET", "/v1/events", lambda s, p, q, b: s.list_events(q)),
    ("GET", "/v1/events/histories", lambda s, p, q, b: s.list_histories(q)),
    ("POST", "/v1/events/trigger/{code_name}", lambda s, p, q, b: s.trigger_event(p[0], b)),
]
_COMPILED_ROUTES = [
    (method, re.compile("^" + re.sub(r"\{\w+\}", "([^/]+)", template) + "/?$"), template, handler)
    for method, template, handler in _V1_ROUTES
]


def _match_route(method: str, path: str) -> tuple[str | None, tuple[str, ...], Handler | None]:
    for route_method, pattern, template, handler in _COMPILED_ROUTES:
        if route_method == method and (match := pattern.match(path)):
            return template, tuple(unquote(g) for g in match.groups()), handler
    return None, (), None


def _parse_json(raw: bytes) -> Json:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(400, "body is not valid JSON") from None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # many concurrent clients connecting at once

    def __init__(self, address: tuple[str, int], store: _Store) -> None:
        self.store = store
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("emulator connection error from %s", client_address, exc_info=True)  # e.g. client resets

    def close_open_connections(self) -> None:
        """Keep-alive connections would otherwise keep being served after stop()."""
        with self.connections_lock:
            for conn in self.open_connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every reply carries Content-Length
    timeout = 60  # drop idle keep-alive connections
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid the 40 ms delayed-ACK stall
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet; nothing here may ever include the API key

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True  # unsupported framing: the stream cannot be resynchronised
            raise ApiError(411, "Content-Length required")
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: Json, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            raw = self._read_body()  # always drained first so keep-alive stays in sync on early errors
        except ApiError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        if url.path.startswith("/_emulator/"):
            self._control(method, url.path, raw)
        else:
            self._api(method, url.path, parse_qs(url.query), raw)

    def _authorized(self) -> bool:
        given = self.headers.get("spm-api-key") or ""
        return hmac.compare_digest(given.encode(), self.server.store.api_key.encode())

    def _api(self, method: str, path: str, query: Query, raw: bytes) -> None:
        store = self.server.store
        template, params, handler = _match_route(method, path)
        route = f"{method} {template or '(unmatched)'}"
        if store.config.latency_ms:
            time.sleep(store.config.latency_ms / 1000)
        headers: dict[str, str] = {}
        lose = False
        with store.lock:
            try:
                fault, lose = store.admit(is_write=method != "GET")
                if fault:
                    status, body, headers = fault
                elif not self._authorized():
                    raise ApiError(401, "Invalid or missing API key")  # never echo the key
                elif handler is None:
                    raise ApiError(404, f"Cannot {method} {path}")
                else:
                    status, body = handler(store, params, query, _parse_json(raw))
            except ApiError as exc:
                status, body = exc.status, error_body(exc.status, exc.message, **exc.extra)
            except Exception:
                log.exception("emulator error on %s", route)
                status, body = 500, error_body(500, "Internal server error")
            lose = lose and status < 300  # only an applied write can lose its answer
            store.count(route, "lost" if lose else status)
        if lose:
            # The write is applied; closing without a byte makes the client see a transport error.
            self.close_connection = True
            return
        self._send(status, body, headers)

    def _control(self, method: str, path: str, raw: bytes) -> None:
        store = self.server.store
        try:
            body = _parse_json(raw)
            with store.lock:
                if (method, path) == ("GET", "/_emulator/state"):
                    result = store.snapshot()
                elif (method, path) == ("POST", "/_emulator/config"):
                    result = {"config": store.configure(_object(body or {}, "body"))}
                elif (method, path) == ("POST", "/_emulator/contacts"):
                    result = {"contacts": store.seed_contacts(body)}
                elif (method, path) == ("POST", "/_emulator/reset"):
                    store.reset()
                    result = {"reset": True}
                else:
                    raise ApiError(404, f"Cannot {method} {path}")
        except ApiError as exc:
            self._send(exc.status, error_body(exc.status, exc.message))
            return
        self._send(200, result)


class Emulator:
    """The emulator on a background thread: `with Emulator() as emu: httpx.get(emu.base_url + ...)`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = EMULATOR_API_KEY,
        config: EmulatorConfig | None = None,
        **overrides: Any,
    ) -> None:
        self.host, self.port, self.api_key = host, port, api_key
        self._store = _Store(api_key, config or EmulatorConfig())
        if overrides:
            self.configure(**overrides)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Emulator:
        if self._server is None:
            self._server = _Server((self.host, self.port), self._store)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="shopimind-emulator",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_open_connections()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:54321" (append /v1/... for API routes)."""
        if self._server is None:
            raise RuntimeError("emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def config(self) -> EmulatorConfig:
        return self._store.config

    def configure(self, **changes: Any) -> EmulatorConfig:
        """Partial, validated config update (same as POST /_emulator/config); raises ValueError."""
        with self._store.lock:
            try:
                self._store.configure(changes)
            except ApiError as exc:
                raise ValueError(exc.message) from None
            return self._store.config

    def state(self) -> dict[str, Json]:
        """Same document as GET /_emulator/state (a deep copy)."""
        with self._store.lock:
            return self._store.snapshot()

    def seed_contacts(self, contacts: list[dict[str, Json]]) -> list[dict[str, Json]]:
        with self._store.lock:
            try:
                return self._store.seed_contacts(contacts)
            except ApiError as exc:
                raise ValueError(exc.message) from None

    def reset(self) -> None:
        """Forget all data and counters; the config is kept."""
        with self._store.lock:
            self._store.reset()


def serve(host: str = "127.0.0.1", port: int = 8765, api_key: str = EMULATOR_API_KEY, **config: Any) -> None:
    """Run the emulator in the foreground until Ctrl-C (used by the CLI)."""
    with Emulator(host, port, api_key, **config) as emulator:
        print(f"ShopiMind emulator listening on {emulator.base_url} (inspect: /_emulator/state)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
