"""One pull: today's export of the program's platform, from its API to `<exports>/<today>/<stem>.jsonl`.

`pull_export` refuses any day but today (an API serves the members as they are now: a past day is
processed from its stored file), reads the credentials from the environment variables program.yaml
names, pages through the platform's listings (resuming the same day's unfinished pull), and publishes
the whole export with its manifest (staging.py). A pull that cannot finish raises `PullError` naming the
page it stopped at, and writes no export.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...httpapi.urls import api_root_problem
from ...program import Program
from ..files import FORMATS, day_dir
from ..platforms import PLATFORMS
from . import loyaltylion, voucherify
from .client import PullClient, PullError
from .listing import Phase, Settings
from .staging import Staging, publish, remove_other_days

PULLERS = {module.NAME: module for module in (loyaltylion, voucherify)}
EXPORT_FORMAT = ".jsonl"


@dataclass(frozen=True)
class Pulled:
    path: Path
    manifest: dict


def resolve(program: Program) -> Settings:
    """`source.pull` with the platform's defaults (its module's PULL); program.yaml validation already
    refused what cannot be pulled."""
    pull, platform = program.source.pull, program.source.platform
    spec = PLATFORMS[platform].PULL
    base_url = (pull.base_url or spec.base_url).strip().rstrip("/")
    if problem := api_root_problem(base_url, "source.pull.base_url"):
        raise PullError(problem)
    return Settings(platform=platform, base_url=base_url, api_version=pull.api_version or next(iter(spec.versions)),
                    page_size=pull.page_size or spec.max_page_size,
                    requests_per_second=pull.requests_per_second or spec.requests_per_second,
                    deadline_s=pull.deadline_minutes * 60, campaign_id=pull.campaign_id)


def credentials(program: Program, environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """(setting → value, the variables' names) read from the environment now; a missing one fails,
    naming the variable and the setting, never a value."""
    pull, platform = program.source.pull, program.source.platform
    values, names = {}, []
    for setting, default in PLATFORMS[platform].PULL.credentials.items():
        name = getattr(pull, setting) or default
        names.append(name)
        if not environ.get(name):
            raise PullError(f"{name} is not set: the {platform} pull reads its credential from it "
                            f"(source.pull.{setting}, docs/pull.md); nothing was pulled")
        if not environ[name].isprintable() or environ[name] != environ[name].strip():
            # A value read from a file often ends with "\n": sent as a header, httpx would refuse it and
            # quote it in its error. Say which variable, never the value.
            raise PullError(f"{name} holds whitespace or a control character (a trailing newline?): check "
                            f"the value, it is not shown here; nothing was pulled")
        values[setting] = environ[name]
    return values, names


def pull_export(program: Program, exports_dir: Path, day: dt.date, *, today: dt.date,
                environ: Mapping[str, str] = os.environ, log: Callable[[str], None] = lambda _: None,
                **client_options: Any) -> Pulled:
    """`client_options`: PullClient's retry knobs and transport (tests)."""
    if day != today:
        raise PullError(f"cannot pull {day}: an API serves the members as they are now, so only today's export "
                        f"({today}, {program.timezone}) can be pulled; a past day is processed from its stored file")
    if not program.source.pull.enabled:
        raise PullError("source.pull.enabled is false in program.yaml: this program's exports are dropped as "
                        "files (docs/pull.md says how to pull them instead)")
    settings = resolve(program)
    puller = PULLERS[settings.platform]
    secrets, names = credentials(program, environ)
    stem = program.source.accounts_file
    folder = day_dir(exports_dir, day)
    target = folder / f"{stem}{EXPORT_FORMAT}"
    if dropped := [p.name for p in (folder / f"{stem}{ext}" for ext in FORMATS) if p != target and p.is_file()]:
        raise PullError(f"{folder} already holds a dropped export ({', '.join(dropped)}): a pulled {target.name} "
                        "would make two; remove it to pull instead")
    folder.mkdir(parents=True, exist_ok=True)
    for gone in remove_other_days(exports_dir, folder, stem):
        log(f"removed {gone}: an unfinished pull of another day can never be finished")
    identity = {"platform": settings.platform, "base_url": settings.base_url, "api_version": settings.api_version,
                "page_size": settings.page_size, "campaign_id": settings.campaign_id}
    started = dt.datetime.now(dt.UTC)
    with Staging.open(folder, stem, identity) as staging, PullClient(
            settings.base_url, puller.headers(secrets), secrets=list(secrets.values()),
            credential_names=" and ".join(names),
            requests_per_second=settings.requests_per_second, deadline_s=settings.deadline_s,
            **client_options) as client:
        if staging.resumed:
            log(f"resuming today's unfinished pull: {_progress(staging)}")
        for phase in puller.phases(settings):
            _walk(phase, client, staging, log)
        built, rows = puller.build(staging, settings)
        staging.seal()
        manifest = publish(built, target, {
            "source": "api", "platform": settings.platform, "base_url": settings.base_url,
            "api_version": settings.api_version, "business_date": day.isoformat(), "rows": rows,
            "listings": {name: {"pages": s.pages, "rows": s.rows} for name, s in staging.phases.items()},
            "last_cursor": {name: s.last_cursor for name, s in staging.phases.items()},
            "requests": client.stats["requests"], "resumed": staging.resumed,
            "started_at": started.isoformat(timespec="seconds"),
            "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})
        staging.discard()
    log(f"pulled {rows} rows into {target} ({client.stats['requests']} requests)")
    return Pulled(target, manifest)


def _progress(staging: Staging) -> str:
    return ", ".join(f"{name}: {s.pages} pages{' (done)' if s.done else ''}" for name, s in staging.phases.items())


def _walk(phase: Phase, client: PullClient, staging: Staging, log: Callable[[str], None]) -> None:
    """Every page of one listing from its checkpoint on; a cursor served twice is a loop, not a listing."""
    state = staging.state(phase.name)
    seen = {json.dumps(state.cursor, sort_keys=True)} if state.cursor is not None else set()
    while not state.done:
        number = state.pages + 1
        try:
            page = phase.fetch(client, state.cursor, number, staging)
        except PullError as exc:
            raise PullError(f"the pull stopped at {exc}; no export was written (the {state.pages} pages read "
                            f"are kept: a pull later today resumes from page {number})") from None
        key = json.dumps(page.cursor, sort_keys=True)
        if page.cursor is not None and key in seen:
            raise PullError(f"the pull stopped at page {number} of the {phase.name} listing: the API sent the "
                            f"cursor of a page already read ({key[:80]}), a loop; no export was written")
        seen.add(key)
        staging.append(phase.name, page.objects, page.cursor)
        if number % 100 == 0:
            log(f"{phase.name}: {number} pages, {state.rows} rows")
