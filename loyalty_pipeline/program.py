"""The loyalty program (`data/program.yaml`): a validated pydantic model, and the resource that hands
it to a run.

Everything a day's processing needs to know about the program lives here: where its exports
come from, its tiers, and the thresholds that turn deltas into marketing events.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dagster as dg
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from .ingest.columns import ACCOUNT_COLUMNS, ACTIVITY_COLUMNS
from .ingest.platforms import PLATFORMS
from .processes import announce


def _known_platform(name: str) -> str:
    if name not in PLATFORMS:
        raise ValueError(f"no adapter for platform {name!r}; known: {', '.join(PLATFORMS)}")
    return name


# A platform the ingest has an adapter for (the registry of ingest/platforms/, read when validating).
Platform = Annotated[str, AfterValidator(_known_platform)]


def normalize_tier_name(name: str) -> str:
    """How raw tier names are compared: NFC, trimmed, case-folded (same rule as the SQL side)."""
    return unicodedata.normalize("NFC", name).strip().lower()


class _Strict(BaseModel):
    # Unknown keys are errors: a typo in program.yaml must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _quoted_time(value: object) -> object:
    # YAML reads an unquoted 06:00 as the base-60 integer 360: insist on a string.
    if not isinstance(value, str | dt.time):
        raise ValueError(f'expected a quoted local time such as "06:00", got {value!r}')
    return value


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")  # the convention; an API key or token is not written so
_CREDENTIALS = ("api_key_env", "app_id_env", "app_token_env")  # the settings naming environment variables
_PLATFORM_SETTINGS = (*_CREDENTIALS, "campaign_id")


class Pull(_Strict):
    """`source.pull`: the day's export fetched from the platform's API (ingest/pull/, docs/pull.md).

    Credentials are named by environment variable (read when the pull runs), never written here.
    Unset settings take the platform's defaults (its module's `PULL`)."""

    enabled: bool = False
    base_url: str | None = None  # the API root without the version; default: the platform's public API
    api_version: str | None = None  # default: the platform's first
    page_size: int | None = Field(default=None, ge=1)  # default: the most the listing serves
    requests_per_second: float | None = Field(default=None, gt=0)  # default: the platform's (docs/pull.md)
    deadline_minutes: float = Field(default=120, gt=0)  # a pull still unfinished by then fails, writing nothing
    time: dt.time = dt.time(23, 0)  # local: pull_schedule pulls today's export at this time
    api_key_env: str | None = None  # LoyaltyLion (default LOYALTYLION_API_KEY)
    app_id_env: str | None = None  # Voucherify (default VOUCHERIFY_APP_ID)
    app_token_env: str | None = None  # Voucherify (default VOUCHERIFY_APP_TOKEN)
    campaign_id: str | None = None  # Voucherify v1: the loyalty campaign whose members are pulled

    _time = field_validator("time", mode="before")(_quoted_time)

    @field_validator(*_CREDENTIALS)
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        # A credential pasted here instead of its variable's name must not be kept, nor echoed back.
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("expected the NAME of an environment variable (capitals, digits and _, e.g. "
                             "LOYALTYLION_API_KEY), never the credential itself")
        return value


class Source(_Strict):
    platform: Platform = "canonical"
    accounts_file: str = "accounts"
    activities_file: str = "activities"
    encoding: Literal["utf-8", "windows-1252"] = "utf-8"
    # Header → canonical column, for files whose headers differ (Yotpo's dashboard CSV, a shop's own
    # canonical export): an entry wins over a header that merely carries the column's name.
    column_map: dict[str, str] = Field(default_factory=dict)
    pull: Pull = Pull()

    @field_validator("column_map")
    @classmethod
    def _canonical_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value.values()) - set(ACCOUNT_COLUMNS) - set(ACTIVITY_COLUMNS))
        if unknown:
            raise ValueError(f"maps headers to unknown column(s) {', '.join(unknown)}; "
                             f"canonical columns are {', '.join(ACCOUNT_COLUMNS)}")
        # Headers are read trimmed: a blank or padded name would never match, silently.
        if unmatchable := [repr(h) for h in value if not h.strip() or h != h.strip()]:
            raise ValueError(f"header(s) {', '.join(unmatchable)} are blank or padded with spaces; "
                             "headers are compared trimmed")
        return value

    @model_validator(mode="after")
    def _pullable(self) -> Source:
        if self.pull.enabled and (problem := pull_problem(self.platform, self.pull)):
            raise ValueError(f"pull: {problem}")
        return self


def pull_problem(platform: str, pull: Pull) -> str | None:
    """Why `platform`'s export cannot be pulled with these settings (None: it can)."""
    spec = getattr(PLATFORMS[platform], "PULL", None)
    if spec is None:
        pullable = [name for name, module in PLATFORMS.items() if getattr(module, "PULL", None)
                    and not module.PULL.refused]
        return f"{platform} has no API to pull from (platforms with one: {', '.join(pullable)})"
    if spec.refused:
        return f"{platform} cannot be pulled: {spec.refused}"
    version = pull.api_version or next(iter(spec.versions))
    if version not in spec.versions:
        return f"api_version {version!r} is not {platform}'s (known: {', '.join(spec.versions)})"
    if why := spec.versions[version]:
        return f"{platform} {version} cannot be pulled: {why}"
    if pull.page_size and pull.page_size > spec.max_page_size:
        return f"page_size {pull.page_size}: {platform} serves at most {spec.max_page_size} per page"
    if missing := [name for name in spec.required if not getattr(pull, name)]:
        return f"{platform} needs {', '.join(missing)}"
    wanted = {*spec.credentials, *spec.required}
    if unused := [name for name in _PLATFORM_SETTINGS if getattr(pull, name) and name not in wanted]:
        return f"{', '.join(unused)} mean(s) nothing to {platform}"
    return None


class Tier(_Strict):
    name: str
    rank: int = Field(ge=1)
    threshold: int = Field(ge=0, description="points on the tier basis needed to reach the tier")
    aliases: list[str] = Field(default_factory=list)
    benefits: list[str] = Field(default_factory=list)


class Operations(_Strict):
    """Schedules, sensors (loyalty_pipeline/operations/) and volume guards (the snapshot and event checks)."""

    schedule_time: dt.time = dt.time(6, 0)        # local (program time zone): run the previous business date
    freshness_deadline: dt.time = dt.time(9, 0)   # local: yesterday's partition must be done by then
    member_count_band: float = Field(default=0.2, gt=0)  # max relative drop/rise of members vs previous day
    member_count_floor: int = Field(default=100, ge=0)   # a change of at most this many members always passes
    event_volume_band: float = Field(default=1.0, gt=0)  # max relative rise of events vs previous day
    event_volume_floor: int = Field(default=100, ge=0)   # a day with at most this many events always passes
    # An unknown tier name is configuration drift: by default any such row stops the day's outbound.
    unknown_tier_max_share: float = Field(default=0.0, ge=0, le=1)  # of raw rows quarantined as unknown_tier
    unknown_tier_floor: int = Field(default=0, ge=0)     # at most this many such rows always pass
    export_settle_seconds: int = Field(default=60, ge=0)  # the sensor waits until a file is this old
    failure_webhook_url: str | None = None  # run failures are POSTed here too (env LOYALTY_FAILURE_WEBHOOK_URL wins)

    _times = field_validator("schedule_time", "freshness_deadline", mode="before")(_quoted_time)


class Program(_Strict):
    name: str = "Loyalty program"
    timezone: str = "UTC"
    partitions_start: dt.date = dt.date(2025, 1, 1)
    source: Source = Source()
    tier_basis: Literal["lifetime_points", "points_balance"] = "lifetime_points"
    tiers: list[Tier]
    downgrade_grace_days: int = Field(default=30, ge=0)
    expiry_reminder_days: list[int] = Field(default_factory=lambda: [30, 7, 1])
    approaching_tier_threshold: int = Field(default=250, ge=0)
    approaching_cooldown_days: int = Field(default=7, ge=0)
    max_event_age_days: int = Field(default=3, ge=0)
    # A member who leaves (opts out, or is missing from `removal_grace_days` consecutive exports) has its
    # ShopiMind LoyaltyAccount deleted ("one row per enrolled customer"), or kept with `keep`.
    on_leave: Literal["delete", "keep"] = "delete"
    removal_grace_days: int = Field(default=3, ge=1)  # exports missed before an absent member is removed
    default_reason: str = "purchase"
    negative_balance_floor: int = -10_000
    # Event types can be switched off one by one: {"loyalty.tier_joined": false}.
    events: dict[str, bool] = Field(default_factory=dict)
    operations: Operations = Operations()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("expiry_reminder_days")
    @classmethod
    def _positive_windows(cls, value: list[int]) -> list[int]:
        if any(d < 0 for d in value):
            raise ValueError("reminder windows must be >= 0 days")
        return sorted(set(value), reverse=True)

    @model_validator(mode="after")
    def _coherent_tiers(self) -> Program:
        if not self.tiers:
            raise ValueError("tiers: at least one tier is required")
        ranks = [t.rank for t in self.tiers]
        if len(set(ranks)) != len(ranks):
            raise ValueError("tiers: ranks must be unique")
        ordered = sorted(self.tiers, key=lambda t: t.rank)
        if [t.threshold for t in ordered] != sorted(t.threshold for t in ordered):
            raise ValueError("tiers: thresholds must rise with rank")
        seen: dict[str, str] = {}
        for tier in ordered:
            for alias in [tier.name, *tier.aliases]:
                key = normalize_tier_name(alias)
                if seen.setdefault(key, tier.name) != tier.name:
                    raise ValueError(f"tiers: alias {alias!r} names both {seen[key]} and {tier.name}")
        return self

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def ordered_tiers(self) -> list[Tier]:
        return sorted(self.tiers, key=lambda t: t.rank)

    def tier_alias_rows(self) -> list[tuple[str, str, int]]:
        """(normalized alias, canonical tier name, rank) for every name a tier is known by."""
        rows = {
            normalize_tier_name(alias): (tier.name, tier.rank)
            for tier in self.ordered_tiers()
            for alias in [tier.name, *tier.aliases]
        }
        return [(alias, name, rank) for alias, (name, rank) in rows.items()]

    def event_enabled(self, code_name: str) -> bool:
        return self.events.get(code_name, True)


class ProgramError(ValueError):
    """program.yaml is missing or invalid; the message names the file and the bad key."""


def load_program(path: str | Path) -> Program:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ProgramError(f"{path}: program file not found (set LOYALTY_PROGRAM)") from exc
    except yaml.YAMLError as exc:
        raise ProgramError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Program.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        # Not chained: the ValidationError quotes each bad input, and a credential pasted in place of its
        # variable's name must not reach a log that way.
        raise ProgramError(f"{path}: invalid program: {problems}") from None


class ProgramResource(dg.ConfigurableResource):
    """program.yaml, the exports directory, and what "today" is (injectable for tests and replays)."""

    program_path: str
    exports_dir: str
    today: str | None = None  # ISO date; default: LOYALTY_TODAY, else today in the program's time zone
    _program: Program | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Every asset but a few checks uses this resource: its run (a pull too) says first which process
        # executes it, so that the run is failed if that process dies (operations/dead_runs.py).
        announce(context)
        # Dagster sets up a fresh copy of the resource for each run (and sensor tick): program.yaml is
        # parsed once there, every asset and check of the run gets that same Program, and an edit of
        # the file applies from the next run.
        self._program = load_program(self.program_path)

    def load(self) -> Program:
        """The run's Program (outside a run, e.g. a resource built by hand: parsed on first use)."""
        if self._program is None:
            self._program = load_program(self.program_path)
        return self._program

    @property
    def exports(self) -> Path:
        return Path(self.exports_dir)

    def today_date(self) -> dt.date:
        override = self.today or os.environ.get("LOYALTY_TODAY")
        if override:
            return dt.date.fromisoformat(override)
        return dt.datetime.now(self.load().tz).date()
