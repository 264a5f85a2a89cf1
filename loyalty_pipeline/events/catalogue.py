"""The catalogue of marketing events: one pydantic model per event's metaData, declared once.

The same models validate every payload the derivation stores (`validate_metadata`) and give the
event type's declaration in ShopiMind (`shopimind_properties`). The first four events are exactly
ShopiMind's tiered-loyalty use case (field names and types kept); the others follow the loyalty
platforms' own events (LoyaltyLion enrolled / approaching_tier_upgrade, Voucherify tier.joined,
Yotpo opt_out).
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class _Meta(BaseModel):
    # A payload with an unknown field is a derivation bug, not something to pass along.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PointsEarned(_Meta):
    points_amount: int = Field(gt=0, description="Number of points credited by this action")
    reason: str = Field(description="purchase | referral | review | newsletter_signup | birthday")
    new_balance: int = Field(description="Balance after credit")


class TierUpgraded(_Meta):
    previous_tier: str
    new_tier: str


class TierDowngraded(_Meta):
    previous_tier: str
    new_tier: str
    grace_period_days: int | None = Field(default=None, description="Days left to regain the former tier")


class PointsExpiring(_Meta):
    points_at_risk: int = Field(gt=0)
    expiry_date: dt.date


class Enrolled(_Meta):
    tier: str | None = Field(default=None, description="Tier at enrolment (none yet on some platforms)")
    points_balance: int = Field(description="Balance at enrolment")


class OptedOut(_Meta):
    previous_tier: str | None = Field(default=None, description="Tier held before opting out")


class TierJoined(_Meta):
    new_tier: str = Field(description="First tier of a member who had none")


class ApproachingTierUpgrade(_Meta):
    current_tier: str
    next_tier: str
    points_to_next_tier: int = Field(gt=0, description="Points still needed, on the program's tier basis")


@dataclass(frozen=True)
class EventType:
    code_name: str
    name: str
    description: str  # when it fires (docs/events.md's catalogue table says it in full)
    metadata_model: type[_Meta]


CATALOGUE: dict[str, EventType] = {e.code_name: e for e in [
    EventType("loyalty.points_earned", "Loyalty — points earned",
              "Points credited: per reason from the day's activities, else the rise of lifetime points",
              PointsEarned),
    EventType("loyalty.tier_upgraded", "Loyalty — tier upgraded",
              "Moved up to a higher tier", TierUpgraded),
    EventType("loyalty.tier_downgraded", "Loyalty — tier downgraded",
              "Moved down to a lower tier", TierDowngraded),
    EventType("loyalty.points_expiring", "Loyalty — points expiring",
              "A reminder window (e.g. 30/7/1 days) before a batch of points expires was reached",
              PointsExpiring),
    EventType("loyalty.enrolled", "Loyalty — enrolled",
              "Joined the program (new member, or enrolled again)", Enrolled),
    EventType("loyalty.opted_out", "Loyalty — opted out",
              "Left the program (enrolled became false)", OptedOut),
    EventType("loyalty.tier_joined", "Loyalty — tier joined",
              "An existing member without a tier got one", TierJoined),
    EventType("loyalty.approaching_tier_upgrade", "Loyalty — approaching tier upgrade",
              "Came within the program's threshold of the next tier", ApproachingTierUpgrade),
]}

# Sent inside metaData by the delivery engine (never stored in loyalty_events.metadata), so that an
# uncertain delivery can be found again in ShopiMind's event histories.
EVENT_KEY_FIELD = {"name": "event_key", "type": "text", "required": False,
                   "description": "Pipeline idempotency key (used to reconcile uncertain deliveries)"}

_SHOPIMIND_TYPES: dict[type, str] = {bool: "bool", int: "number", float: "decimal", str: "text",
                                     dt.date: "date"}


def _shopimind_type(annotation: object) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = args[0] if len(args) == 1 else annotation
    try:
        return _SHOPIMIND_TYPES[annotation]  # bool before int: dict lookup is exact, no subclassing
    except (KeyError, TypeError):
        raise TypeError(f"no ShopiMind type for {annotation!r}") from None


def shopimind_properties(event_type: EventType) -> dict:
    """ShopiMind's `properties` body of createEvent for this event type (plus the event_key field)."""
    fields = []
    for name, info in event_type.metadata_model.model_fields.items():
        spec = {"name": name, "type": _shopimind_type(info.annotation), "required": info.is_required()}
        if info.description:
            spec["description"] = info.description
        fields.append(spec)
    return {"metaData": [*fields, dict(EVENT_KEY_FIELD)]}


def validate_metadata(code_name: str, metadata: dict) -> dict:
    """The payload validated by its event's model, JSON-ready (dates as ISO strings, optional fields
    that are None omitted: ShopiMind validates a present field's type, so null is never sent)."""
    try:
        model = CATALOGUE[code_name].metadata_model
    except KeyError:
        raise KeyError(f"unknown event type {code_name!r}") from None
    return model.model_validate(metadata).model_dump(mode="json", exclude_none=True)
