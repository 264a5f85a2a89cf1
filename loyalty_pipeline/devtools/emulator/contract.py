"""The ShopiMind API v1 contract as the emulator enforces it: body and query validation, as strict as
the SDK's types, and the listing engine every listing route shares (filters, order, pages, envelope).

Where the public contract is silent it implements exactly the choices of the "Unknowns" table in
shared/reference/shopimind-api.md. Pure functions: no state (store.py), no HTTP (server.py).
"""

from __future__ import annotations

import copy
import json
import math
import re
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any

Json = Any
Query = dict[str, list[str]]
Reply = tuple[int, Json]

DEFINITION_FIELD_TYPES = frozenset(
    {"bool", "text", "longtext", "number", "decimal", "list", "date", "datetime", "json", "geolocation"}
)
EVENT_FIELD_TYPES = frozenset({"bool", "text", "longtext", "number", "decimal", "date", "json"})
SYSTEM_TARGET_FIELDS = {"contacts": "id_contact", "products": "product_id"}
CONTACT_RESOLVERS = ("id_contact", "email", "id_customer")
RESERVED_RECORD_COLUMNS = frozenset({"id", "created_at", "updated_at"})
DEFAULT_PAGE, MAX_PAGE = 10, 100
TEXT_MAX_LENGTH = 255

DEFINITION_KEYS = frozenset({"name", "description", "unique_keys", "fields", "relationships"})
_FIELD_KEYS = frozenset({"name", "label", "type", "required", "description", "default", "options"})
_RELATIONSHIP_KEYS = frozenset({"sourceField", "targetSchemaType", "targetSchema", "targetField"})
EVENT_KEYS = frozenset({"name", "code_name", "properties"})
TRIGGER_KEYS = frozenset({"contact", "visitor", "metaData", "customData"})
# The SDK's trigger type (sdk:src/types/events.ts): contact {id (a number), email, phone, customData}.
TRIGGER_CONTACT_KEYS = frozenset({"id", "email", "phone", "customData"})
VISITOR_KEYS = frozenset({"id", "customData"})
# Event type `properties` (Unknown #9): the four validated slots and the target, each field spec typed.
_PROPERTIES_KEYS = frozenset({"target", "metaData", "customData", "contact", "visitor"})
_PROPERTY_SLOT_KEYS = frozenset({"customData"})
_PROPERTY_FIELD_KEYS = frozenset({"name", "type", "required", "description"})


class ApiError(Exception):
    """A non-2xx answer; rendered NestJS-style (Unknown #3) with optional extra keys."""

    def __init__(self, status: int, message: str, **extra: Json) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def error_body(status: int, message: str, **extra: Json) -> dict[str, Json]:
    return {"statusCode": status, "message": message, "error": HTTPStatus(status).phrase, **extra}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def name_key(name: str) -> str:
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


def is_int(value: Json) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_scalar(value: Json) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def type_error(ftype: str, value: Json, options: list[Json] | None = None) -> str | None:
    """Validate one non-null value per Unknown #10; returns an error message or None."""
    if ftype == "bool":
        ok, expected = isinstance(value, bool), "a boolean"
    elif ftype == "number":
        ok, expected = is_int(value), "an integer"
    elif ftype == "decimal":
        ok = is_int(value) or (isinstance(value, float) and math.isfinite(value))
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


def require_object(value: Json, where: str) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{where} must be an object")
    return value


def reject_extra(obj: dict[str, Json], allowed: frozenset[str], where: str = "") -> None:
    """Strict bodies: the real controllers refuse unknown properties."""
    extra = sorted(set(obj) - allowed)
    if extra:
        raise ApiError(400, f"property {where}{extra[0]} should not exist")


def optional_str(obj: dict[str, Json], key: str, where: str = "") -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{where}{key} must be a string")
    return value


def strict_objects(value: Json, what: str, allowed: frozenset[str]) -> Iterator[tuple[str, dict[str, Json]]]:
    """Each item of the array `what`, an object with none but `allowed` keys, and its place for messages."""
    if not isinstance(value, list):
        raise ApiError(400, f"{what} must be an array")
    for i, item in enumerate(value):
        reject_extra(require_object(item, f"{what}[{i}]"), allowed, f"{what}[{i}].")
        yield f"{what}[{i}].", item


def check_fields(fields: Json, taken: set[str]) -> list[dict[str, Json]]:
    """Validate definition field specs; `taken` (mutated) holds names already in use."""
    out = []
    for where, spec in strict_objects(fields, "fields", _FIELD_KEYS):
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ApiError(400, f"{where}name must be a non-empty string")
        if name in taken or name in RESERVED_RECORD_COLUMNS:
            raise ApiError(400, f"field {name!r} already exists")
        if spec.get("type") not in DEFINITION_FIELD_TYPES:
            raise ApiError(400, f"{where}type must be one of {sorted(DEFINITION_FIELD_TYPES)}")
        if not isinstance(spec.get("required", False), bool):
            raise ApiError(400, f"{where}required must be a boolean")
        optional_str(spec, "label", where)
        optional_str(spec, "description", where)
        options = spec.get("options")
        if options is not None and (
            spec["type"] != "list" or not isinstance(options, list) or not all(map(_is_scalar, options))
        ):
            raise ApiError(400, f"{where}options must be an array of strings/numbers on a list field")
        taken.add(name)
        out.append({**spec, "required": spec.get("required", False)})
    return out


def check_relationships(
    relationships: Json, field_names: set[str], sources: set[str], custom_ids: set[str]
) -> list[dict[str, Json]]:
    """Validate relationships; `sources` (mutated) holds source fields that already have one."""
    out = []
    for where, rel in strict_objects(relationships, "relationships", _RELATIONSHIP_KEYS):
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


def event_slots(properties: dict[str, Json]) -> dict[str, list[dict[str, Json]]]:
    """The four validated payload slots of an event type (Unknown #9); other keys are ignored."""
    return {
        "metaData": properties.get("metaData") or [],
        "customData": properties.get("customData") or [],
        "contact.customData": (properties.get("contact") or {}).get("customData") or [],
        "visitor.customData": (properties.get("visitor") or {}).get("customData") or [],
    }


def check_event_properties(properties: Json) -> dict[str, Json]:
    properties = require_object(properties, "properties")
    reject_extra(properties, _PROPERTIES_KEYS, "properties.")
    if properties.get("target") not in (None, "contact", "visitor"):
        raise ApiError(400, "properties.target must be 'contact' or 'visitor'")
    for slot in ("contact", "visitor"):
        if slot in properties:
            reject_extra(require_object(properties[slot], f"properties.{slot}"), _PROPERTY_SLOT_KEYS,
                         f"properties.{slot}.")
    for slot, specs in event_slots(properties).items():
        if not isinstance(specs, list):
            raise ApiError(400, f"properties.{slot} must be an array")
        for i, spec in enumerate(specs):
            where = f"properties.{slot}[{i}]"
            spec = require_object(spec, where)
            reject_extra(spec, _PROPERTY_FIELD_KEYS, f"{where}.")
            if not isinstance(spec.get("name"), str) or not spec["name"]:
                raise ApiError(400, f"{where}.name must be a non-empty string")
            if spec.get("type") not in EVENT_FIELD_TYPES:
                raise ApiError(400, f"{where}.type must be one of {sorted(EVENT_FIELD_TYPES)}")
            if not isinstance(spec.get("required", False), bool):
                raise ApiError(400, f"{where}.required must be a boolean")
    return properties


def check_payload(slot: str, data: Json, specs: list[dict[str, Json]]) -> None:
    """Trigger payloads must match the declared slot exactly: required, typed, nothing undeclared."""
    data = {} if data is None else require_object(data, slot)
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


def page_params(limit: Json, offset: Json) -> tuple[int, int]:
    try:
        limit = DEFAULT_PAGE if limit in (None, "") else int(limit)
        offset = 0 if offset in (None, "") else int(offset)
    except (TypeError, ValueError):
        raise ApiError(400, "limit and offset must be integers") from None
    if not 1 <= limit <= MAX_PAGE:
        limit = DEFAULT_PAGE  # observed: a limit above 100 silently falls back to 10 (Unknown #20)
    return limit, max(offset, 0)


def _query_page(query: Query) -> tuple[int, int]:
    return page_params(query.get("limit", [None])[0], query.get("offset", [None])[0])


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
HISTORY_PARAMS = frozenset({"settings", "fields"})
HISTORY_SETTINGS = frozenset({"limit", "offset", "order", "filter"})

# A listing's columns: name -> how a filter value is read for it (query strings carry text).
Columns = dict[str, Callable[[Json], Json]]


def as_int(value: Json) -> int:
    if isinstance(value, bool):
        raise ValueError("boolean")
    return int(str(value).strip()) if isinstance(value, str) else int(value)


def as_number(value: Json) -> float:
    if isinstance(value, bool):
        raise ValueError("boolean")
    return float(value)


def as_text(value: Json) -> str:
    return str(value).strip()


def as_bool(value: Json) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).strip().lower() in ("true", "1"):
        return True
    if str(value).strip().lower() in ("false", "0"):
        return False
    raise ValueError("not a boolean")


FIELD_COERCION = {"number": as_int, "decimal": as_number, "bool": as_bool}


def _like(pattern: str) -> re.Pattern[str]:
    """SQL LIKE: % any run, _ one character, the rest literal."""
    return re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern), re.S)


def _compile_filter(flt: Json, columns: Columns, where: str) -> Callable[[dict[str, Json]], bool]:
    """One filter {field, operator, values}: multi-value operators take an array or a comma string."""
    flt = require_object(flt, where)
    reject_extra(flt, _FILTER_KEYS, f"{where}.")
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


def fields_param(query: Query) -> list[str] | None:
    """`fields`: comma-separated or repeated; None = every column."""
    names = [n.strip() for raw in query.get("fields", []) for n in raw.split(",") if n.strip()]
    return names or None


def select(rows: list[dict[str, Json]], columns: Columns, *, filters: list[Json], order: list[Json],
            fields: list[str] | None, limit: int, offset: int, filter_param: str = "filters") -> dict[str, Json]:
    """Filter, sort, page and project `rows` into the listing envelope (of copies)."""
    predicates = [_compile_filter(f, columns, f"{filter_param}[{i}]") for i, f in enumerate(filters)]
    if unknown := [f for f in fields or [] if f not in columns]:
        raise ApiError(400, f"fields: unknown field {unknown[0]!r}")
    for i, item in enumerate(order):
        reject_extra(require_object(item, f"order[{i}]"), _ORDER_KEYS, f"order[{i}].")
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


def query_listing(query: Query, rows: list[dict[str, Json]], columns: Columns) -> Reply:
    """A listing whose parameters are query-string ones (definitions, event types, records)."""
    if unknown := sorted(set(query) - _LISTING_PARAMS):
        raise ApiError(400, f"query parameter {unknown[0]!r} should not exist")
    limit, offset = _query_page(query)
    return 200, select(rows, columns, filters=_json_param(query, "filters"), order=_json_param(query, "order"),
                        fields=fields_param(query), limit=limit, offset=offset)


def contact_key(by: str, value: Json) -> tuple[str, str]:
    return by, str(value).strip().lower() if by == "email" else str(value)


def record_resolver(value: Json) -> tuple[dict[str, Json] | None, str | None]:
    """Parse a contacts relation value: a canonical id, or {"by": .., "value": ..} (Unknown #8)."""
    if is_int(value):
        return {"id_contact": value}, None
    if isinstance(value, dict) and set(value) == {"by", "value"} and value["by"] in CONTACT_RESOLVERS:
        by, ident = value["by"], value["value"]
        if by == "id_contact" and is_int(ident):
            return {by: ident}, None
        if by != "id_contact" and _is_scalar(ident) and str(ident).strip():
            return {by: ident}, None
    return None, 'must be a contact id or {"by": "id_contact"|"email"|"id_customer", "value": ...}'
