"""Typed ShopiMind payloads: what the pipeline sends, and the parts of the answers it relies on.

Request models are strict (`extra="forbid"`): the API rejects unknown properties, so a typo must
fail here rather than as thousands of 400s. Answers are read by the small readers at the end: they
take any body (HTML, a JSON array, nulls) and say what is wrong with it instead of raising
AttributeError or TypeError; they are lenient only where the contract leaves the shape open
(reference/shopimind-api.md, Unknowns #2, #3, #6).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from ..core.outcomes import Refused, SetupGone, TooLarge


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DefinitionField(_Request):
    name: str
    label: str
    type: Literal["bool", "text", "longtext", "number", "decimal", "list", "date", "datetime", "json",
                  "geolocation"]
    required: bool


class Relationship(_Request):
    sourceField: str  # noqa: N815 (API spelling)
    targetSchemaType: Literal["system", "custom"]  # noqa: N815
    targetSchema: str  # noqa: N815
    targetField: str  # noqa: N815


class CustomDataDefinition(_Request):
    name: str
    description: str
    unique_keys: list[str]
    fields: list[DefinitionField]
    relationships: list[Relationship]


# The field holding our customer_id in each record. Records store contact_id as ShopiMind's canonical
# contact id (resolved server-side from {"by": "id_customer", ...}), so without it a listing cannot say
# which record is which member: deleting a departed member's record lists it by this field (IN filter).
CUSTOMER_KEY_FIELD = "customer_id"

# Step 1 of ShopiMind's tiered-loyalty use case (shared/seeds/000), byte for byte in meaning, plus the
# customer key (appended: an existing definition gets it through the append-only `extend`).
LOYALTY_ACCOUNT = CustomDataDefinition(
    name="LoyaltyAccount",
    description="Current state of the loyalty program for a contact",
    unique_keys=["contact_id"],
    fields=[
        DefinitionField(name="contact_id", label="Contact", type="number", required=True),
        DefinitionField(name="points_balance", label="Points balance", type="number", required=True),
        DefinitionField(name="tier", label="Tier", type="text", required=True),
        DefinitionField(name="tier_since", label="Tier since", type="date", required=False),
        DefinitionField(name="next_expiry_date", label="Next expiry date", type="date", required=False),
        DefinitionField(name="next_expiry_amount", label="Points at risk", type="number", required=False),
        DefinitionField(name=CUSTOMER_KEY_FIELD, label="Customer id (loyalty program)", type="text",
                        required=False),
    ],
    relationships=[Relationship(sourceField="contact_id", targetSchemaType="system", targetSchema="contacts",
                                targetField="id_contact")],
)
# The mapped fields: a record is re-sent only when one of these changed since the last acknowledged push.
ACCOUNT_FIELDS = ("points_balance", "tier", "tier_since", "next_expiry_date", "next_expiry_amount")


class ContactResolver(_Request):
    """A relation to a system contact, resolved server-side: {"by": "id_customer", "value": "0042"}."""

    by: Literal["id_contact", "email", "id_customer"]
    value: str | int


def contact_of(customer_id: str) -> ContactResolver:
    """The member's ShopiMind contact: by the shop's customer id, or by email when the member's id is an
    address (a Yotpo customer report has no shop id and keys members by email, ingest/platforms/yotpo.py)."""
    return ContactResolver(by="email" if "@" in customer_id else "id_customer", value=customer_id)


class LoyaltyAccountRecord(_Request):
    """One LoyaltyAccount row. Optional fields are always sent (null clears a stale value upstream)."""

    contact_id: ContactResolver
    points_balance: int
    tier: str  # required by the definition; a member without a tier is sent "" (docs/shopimind.md)
    tier_since: dt.date | None
    next_expiry_date: dt.date | None
    next_expiry_amount: int | None
    customer_id: str  # CUSTOMER_KEY_FIELD: how a departed member's record is found again

    @field_serializer("tier_since", "next_expiry_date")
    def _iso(self, value: dt.date | None) -> str | None:
        return value.isoformat() if value else None


class EventDeclaration(_Request):
    """createEvent body: an event type as declared to ShopiMind (the pipeline's own event types are the
    catalogue's `events.catalogue.EventType`)."""

    name: str
    code_name: str
    properties: dict[str, Any]


class TriggerContact(_Request):
    """The SDK's trigger contact (sdk:src/types/events.ts) and nothing else: ShopiMind refuses extra
    fields. `id` is ShopiMind's numeric contact id, not the shop's customer id."""

    id: int | None = None
    email: str | None = None
    phone: str | None = None
    customData: dict[str, Any] | None = None  # noqa: N815


class Unaddressable(ValueError):
    """An event for a member ShopiMind cannot be told about: no email, no phone (status `unaddressable`)."""


class TriggerBody(_Request):
    """triggerEvent body: the contact by email (the only identifier the exports carry) and the metaData."""

    contact: TriggerContact
    metaData: dict[str, Any]  # noqa: N815

    @classmethod
    def for_event(cls, email: str | None, metadata: dict[str, Any], event_key: str) -> TriggerBody:
        if not email:
            raise Unaddressable("no email or phone to address the contact by")
        return cls(contact=TriggerContact(email=email), metaData={**metadata, "event_key": event_key})

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class RecordFilter(_Request):
    """One `filters` item of a listing (reference §0: {field, operator, values})."""

    field: str
    operator: Literal["EQUALS", "NOT_EQUALS", "CONTAINS", "NOT_CONTAINS", "STARTS_WITH", "ENDS_WITH", "LESS_THAN",
                      "LESS_THAN_OR_EQUAL_TO", "GREATER_THAN", "GREATER_THAN_OR_EQUAL_TO", "IN", "NOT_IN", "LIKE",
                      "BETWEEN", "NOT_BETWEEN"]
    values: str | int | list[str | int]


class RecordListing(_Request):
    """listCustomDataRecords parameters; objects travel as URL-encoded JSON, `fields` comma-separated."""

    filters: list[RecordFilter] = Field(default_factory=list)
    fields: list[str] = Field(default_factory=list)
    order: list[dict[Literal["field", "type"], str]] = Field(default_factory=list)
    limit: int = Field(default=10, ge=1, le=100)  # above 100 the API silently answers 10 per page
    offset: int = Field(default=0, ge=0)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": self.limit, "offset": self.offset}
        if self.filters:
            params["filters"] = json.dumps([f.model_dump() for f in self.filters], ensure_ascii=False)
        if self.fields:
            params["fields"] = ",".join(self.fields)
        if self.order:
            params["order"] = json.dumps(self.order)
        return params


def invalid_payload(exc: ValidationError) -> str:
    """Why a record or trigger body cannot be built, naming each field and its value, on one line."""
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(map(str, err["loc"])) or "record"
        parts.append(f"{field}: {err['msg']} (got {err.get('input')!r})"[:300])
    return "; ".join(parts)


# -- readers of answers -------------------------------------------------------------------------------

def read_int(value: Any) -> int | None:
    """A count, status or id as answers give it (a number, or a string of digits: listings stringify
    scalars), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _status_problem(body: dict[str, Any]) -> str | None:
    """A `statusCode` inside a 2xx body that says something else than success."""
    status = body.get("statusCode")
    if status is None or 200 <= (read_int(status) or 0) < 300:
        return None
    return f"statusCode {status!r} in the body"


class Page(NamedTuple):
    items: list[dict[str, Any]]  # the objects of the page (anything else in `data` is skipped)
    size: int  # entries in `data`: what the next offset moves by
    more: bool  # another page follows


def read_listing(body: Any) -> Page | None:
    """A list read `{data: [...], meta: {pagination: {has_next_page}}}`; None when the body is not one.
    A missing `meta` means no next page; an empty page ends the listing whatever it says."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    meta = body.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    more = bool(data) and isinstance(pagination, dict) and pagination.get("has_next_page") in (True, "true")
    return Page([item for item in data if isinstance(item, dict)], len(data), more)


def read_bulk(body: Any, batch: list[dict[str, Any]]) -> tuple[dict[int, str], str | None]:
    """A 2xx answer to a bulk write: ({batch index: the API's reason} for rejected items, None), or
    ({}, what does not add up). It adds up when `sent_count` + `rejected_count` is the batch size and
    `rejected_items` lists exactly `rejected_count` distinct records of the batch (by index, or by
    payload when an item has no index). Anything else says nothing reliable about which records
    ShopiMind holds: the caller treats the whole batch as uncertain."""
    if not isinstance(body, dict):
        return {}, "not the bulk envelope"
    if problem := _status_problem(body):
        return {}, problem
    items = body.get("rejected_items")
    sent, refused = read_int(body.get("sent_count")), read_int(body.get("rejected_count"))
    if sent is None or refused is None or not isinstance(items, list):
        listed = f"a list of {len(items)}" if isinstance(items, list) else repr(items)[:50]
        return {}, (f"not the bulk envelope: sent_count {body.get('sent_count')!r}, rejected_count "
                    f"{body.get('rejected_count')!r}, rejected_items {listed}")
    if sent < 0 or refused < 0 or sent + refused != len(batch) or refused != len(items):
        return {}, (f"sent_count {sent} + rejected_count {refused} for {len(batch)} records and "
                    f"{len(items)} rejected_items")
    rejected: dict[int, str] = {}
    for item in items:
        index = rejected_index(item, batch)
        if index is None or index in rejected:
            return {}, f"a rejected item matches no single record of the batch: {rejected_message(item)[:200]}"
        rejected[index] = rejected_message(item)
    return rejected, None


def read_trigger(body: Any) -> str | None:
    """A 2xx answer to triggerEvent: None when it reads as ShopiMind's (a JSON object whose statusCode,
    if any, is 2xx; Unknown #6), else what is wrong. The body is not relied on beyond that."""
    return "not a JSON object" if not isinstance(body, dict) else _status_problem(body)


# ShopiMind's wording of a whole-request refusal, read here only. The bootstrap is gone (deleted or
# deactivated, a shop reset, a stale cache): not the rows' fault. The batch is too large: the API's limit
# is not documented for sure (20, maybe 50).
_SETUP_GONE = re.compile(r"definition.*(not found|not active|inactive)|event .*not found", re.IGNORECASE)
_TOO_LARGE = re.compile(r"too (many|large|long|big)|maximum|\bmax\b|limit|exceed", re.IGNORECASE)


def refusal(message: str | None) -> type[Refused] | type[SetupGone]:
    """What a whole-request refusal (a 4xx other than 401/403/408/429) says, as the type the delivery core
    acts on (outbound/core/outcomes.py)."""
    if _SETUP_GONE.search(message or ""):
        return SetupGone
    return TooLarge if _TOO_LARGE.search(message or "") else Refused


def rejected_index(item: Any, batch: list[Any]) -> int | None:
    """Position in `batch` of one rejected item: its `index` (the emulator's shape), else the batch
    entry equal to its payload (a shape with only the payload; a record id for bulk-delete); None when
    it cannot be told."""
    if isinstance(item, dict):
        for key in ("index", "idx", "position"):
            value = item.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(batch):
                return value
        payload = item.get("payload", item.get("item", item.get("record")))
        if isinstance(payload, dict):
            matches = [i for i, entry in enumerate(batch) if entry == payload]
            if len(matches) == 1:
                return matches[0]
            contact = payload.get("contact_id")
            matches = [i for i, entry in enumerate(batch) if isinstance(entry, dict)
                       and entry.get("contact_id") == contact]
            if contact is not None and len(matches) == 1:
                return matches[0]
        elif payload is not None:
            matches = [i for i, entry in enumerate(batch) if entry == payload]
            if len(matches) == 1:
                return matches[0]
    return None


def rejected_message(item: Any) -> str:
    """The API's reason for one rejected item, as one line ("tier: is required; …")."""
    if isinstance(item, dict):
        errors = item.get("errors", item.get("error", item.get("message")))
        if isinstance(errors, list):
            parts = []
            for err in errors:
                if isinstance(err, dict):
                    field, message = err.get("field"), err.get("message", err.get("msg", err))
                    parts.append(f"{field}: {message}" if field else str(message))
                else:
                    parts.append(str(err))
            return "; ".join(parts)[:1000]
        if errors is not None:
            return str(errors)[:1000]
    return json.dumps(item, default=str)[:1000]


def error_message(body: Any, fallback: str) -> str:
    """The `message` of an error body (NestJS style, possibly a list), else the fallback."""
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, list):
            return "; ".join(map(str, message))[:1000]
        if message:
            return str(message)[:1000]
    return fallback
