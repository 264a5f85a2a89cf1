"""Medians, targets, and the printed/Markdown tables of one bench run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import median

GB = 1024  # MB
# Processing: the whole Dagster run / the bare reference, per format, at 1 M and at 10 M members (issue 17).
RATIO_TARGETS = {"parquet": {1_000_000: 2.0, 10_000_000: 1.5}, "csv": {1_000_000: 2.5, 10_000_000: 1.8}}
PROCESSING_PEAK_MB = 1.5 * GB  # at 10 M
OUTBOUND_PEAK_MB = 500  # at 10 M, and flat in members


def ratio_target(fmt: str, members: int) -> float | None:
    """The target of the nearest member count measured for (1 M below 10 M, 10 M from there on)."""
    by_members = RATIO_TARGETS.get(fmt)
    if not by_members:
        return None
    return by_members[10_000_000] if members >= 10_000_000 else by_members[1_000_000]


def med(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(median(values), 3) if values else None


def summarize_processing(runs: list[dict]) -> dict:
    steps = runs[0]["pipeline"]["step_s"].keys()
    return {
        "pipeline_s": med([r["pipeline"]["seconds"] for r in runs]),
        "reference_s": med([r["reference"]["seconds"] for r in runs]),
        "ratio": med([r["ratio"] for r in runs]),
        "ratios": [r["ratio"] for r in runs],
        "rows": runs[0]["pipeline"]["figures"]["rows"],
        "pipeline_rows_per_s": med([r["pipeline"]["rows_per_s"] for r in runs]),
        "reference_rows_per_s": med([r["reference"]["rows_per_s"] for r in runs]),
        "pipeline_peak_rss_mb": max(r["pipeline"]["peak_rss_mb"] for r in runs),
        "reference_peak_rss_mb": max(r["reference"]["peak_rss_mb"] for r in runs),
        # The run's steps (assets and checks, as Dagster timed them), and the rest: Dagster's own.
        "steps": {s: med([r["pipeline"]["step_s"][s] for r in runs]) for s in steps},
        "dagster_own_s": med([r["pipeline"]["seconds"] - sum(r["pipeline"]["step_s"].values()) for r in runs]),
        "instance_s": med([r.get("instance_s", 0.0) for r in runs]),  # before the run: not in its time
        "checks_passed": all(all(r["pipeline"]["checks"].values()) for r in runs),
        "same_rows_as_reference": all(r["verify"]["same"] for r in runs),
    }


def _side(run: dict, requests: dict) -> dict:
    accounts, events = run["accounts"], run["events"]
    seconds = accounts["seconds"] + events["seconds"]
    records, n_events = accounts["records"], events["events"]
    return {
        "seconds": round(seconds, 3), "accounts_s": accounts["seconds"], "events_s": events["seconds"],
        "records": records, "events": n_events,
        "records_per_s": round(records / accounts["seconds"]) if accounts["seconds"] else None,
        "events_per_s": round(n_events / events["seconds"]) if events["seconds"] else None,
        "requests": requests,
        "requests_per_s": round((requests["records"] + requests["triggers"]) / seconds) if seconds else None,
        "peak_rss_mb": max(accounts["peak_rss_mb"], events["peak_rss_mb"]),
        "client_cpu_s": round(accounts["client_cpu_s"] + events["client_cpu_s"], 2),
        "emulator_cpu_s": requests["emulator_cpu_s"],
        "emulator_busy": round(requests["emulator_cpu_s"] / seconds, 2) if seconds else None,
    }


def outbound_round(pipeline: dict, pipeline_requests: dict, raw: dict | None = None,
                   raw_requests: dict | None = None) -> dict:
    p = _side(pipeline, pipeline_requests)
    if raw is None:  # --skip-raw
        return {"pipeline": p, "raw": None, "ratio": None, "ratio_accounts": None, "ratio_events": None,
                "same_payload_set": None, "payloads_equal": None,
                "pipeline_detail": {k: pipeline[k] for k in ("setup", "accounts", "events", "client_stats")}}
    r = _side(raw, raw_requests)
    return {
        "pipeline": p, "raw": r,
        # Same payloads on both sides, so the throughput ratio is the inverse ratio of the times.
        "ratio": round(r["seconds"] / p["seconds"], 3) if p["seconds"] else None,
        "ratio_accounts": round(r["accounts_s"] / p["accounts_s"], 3) if p["accounts_s"] else None,
        "ratio_events": round(r["events_s"] / p["events_s"], 3) if p["events_s"] else None,
        "same_payload_set": (p["records"], p["events"]) == (r["records"], r["events"]),
        "payloads_equal": raw.get("payloads_equal", {}).get("equal"),
        "pipeline_detail": {k: pipeline[k] for k in ("setup", "accounts", "events", "client_stats")},
    }


def summarize_outbound(rounds: list[dict]) -> dict:
    def side(name: str) -> dict:
        keys = ("seconds", "accounts_s", "events_s", "records_per_s", "events_per_s", "requests_per_s",
                "client_cpu_s", "emulator_cpu_s", "emulator_busy")
        out = {k: med([r[name][k] for r in rounds]) for k in keys}
        out.update(records=rounds[0][name]["records"], events=rounds[0][name]["events"],
                   requests=rounds[0][name]["requests"], peak_rss_mb=max(r[name]["peak_rss_mb"] for r in rounds))
        return out

    if any(r["raw"] is None for r in rounds):  # --skip-raw
        return {"pipeline": side("pipeline"), "raw": None, "ratio": None, "ratios": [None] * len(rounds),
                "ratio_accounts": None, "ratio_events": None, "same_payload_set": None, "payloads_equal": None}
    return {"pipeline": side("pipeline"), "raw": side("raw"), "ratio": med([r["ratio"] for r in rounds]),
            "ratios": [r["ratio"] for r in rounds], "ratio_accounts": med([r["ratio_accounts"] for r in rounds]),
            "ratio_events": med([r["ratio_events"] for r in rounds]),
            "same_payload_set": all(r["same_payload_set"] for r in rounds),
            "payloads_equal": all(r["payloads_equal"] for r in rounds)}


def churn(first_run: dict) -> dict:
    day = first_run["pipeline"]["figures"]
    members, kinds = day["members"], day["by_kind"]
    moves = sum(day["tier_moves"].get(k, 0) for k in ("up", "down"))
    share = (lambda n: round(n / members, 5)) if members else (lambda n: None)
    return {"members": members, "deltas": day["deltas"], "by_kind": kinds,
            "changed_share": share(day["deltas"]), "tier_move_share": share(moves),
            "new_share": share(kinds.get("new", 0)), "gone_share": share(kinds.get("removed", 0)),
            "events": day["events"], "events_share": share(day["events"])}


def requests_vs_change(outbound: dict, change: dict, batch_size: int) -> dict:
    p = outbound["pipeline"]
    members, changed = change["members"], change["deltas"]
    expected = math.ceil(p["records"] / batch_size) + p["events"]
    made = p["requests"]["records"] + p["requests"]["triggers"]
    record_share = p["records"] / members if members else None
    changed_share = changed / members if members else None
    return {"members": members, "changed": changed, "records_sent": p["records"],
            "record_share": round(record_share, 5) if record_share is not None else None,
            "changed_share": round(changed_share, 5) if changed_share is not None else None,
            "records_per_changed": round(p["records"] / changed, 3) if changed else None,
            "events": p["events"], "requests": made, "expected_requests": expected,
            "other_requests": p["requests"]["other"]}


def summarize_rerun(runs: list[dict], first_processing_s: float) -> dict:
    seconds = med([r["processing"]["seconds"] for r in runs])
    worst = max(runs, key=lambda r: r["requests"]["total"])  # the target is "no request at all"
    return {"processing_s": seconds, "first_run_processing_s": first_processing_s,
            "ratio": round(seconds / first_processing_s, 3) if first_processing_s else None,
            "outbound_s": med([r["outbound"]["seconds"] for r in runs]),
            "outbound_success": all(r["outbound"]["success"] for r in runs),
            "outbound_failures": [f for r in runs for f in r["outbound"].get("failures", [])],
            "requests": worst["requests"], "requests_per_run": [r["requests"]["total"] for r in runs],
            "peak_rss_mb": max(r["processing"]["peak_rss_mb"] for r in runs)}


def _target(name: str, target: str, measured: float | None, ok: bool | None, miss: str | None = None,
            note: str = "") -> dict:
    return {"name": name, "target": target, "measured": measured, "ok": ok, "miss_by": miss if ok is False else None,
            "note": note}


def targets(result: dict, history: list[dict]) -> list[dict]:
    out = []
    members = result["meta"]["members"]
    for fmt, proc in result.get("processing", {}).items():
        s = proc["summary"]
        wanted = ratio_target(fmt, members)
        if wanted is not None:
            out.append(_target(f"processing {fmt}: Dagster run / bare DuckDB", f"<= {wanted}", s["ratio"],
                               s["ratio"] <= wanted, f"{s['ratio'] / wanted:.2f}x over ({s['ratio']} vs {wanted})",
                               "" if members in (1_000_000, 10_000_000) else "target of the nearest of 1M / 10M"))
        peak = s["pipeline_peak_rss_mb"]
        out.append(_target(f"processing {fmt}: peak RSS (MB)", f"<= {PROCESSING_PEAK_MB:.0f} at 10M", peak,
                           peak <= PROCESSING_PEAK_MB, f"{peak - PROCESSING_PEAK_MB:+.0f} MB",
                           "" if members >= 10_000_000 else "indicative below 10M"))
    if "outbound" in result:
        o = result["outbound"]["summary"]
        if o["ratio"] is not None:
            out.append(_target("outbound: pipeline / raw httpx throughput", ">= 0.8", o["ratio"], o["ratio"] >= 0.8,
                               f"{0.8 - o['ratio']:.2f} short ({o['ratio']} vs 0.8)"))
        peaks = {h["meta"]["members"]: h["outbound"]["summary"]["pipeline"]["peak_rss_mb"]
                 for h in history if "outbound" in h}
        peaks[members] = o["pipeline"]["peak_rss_mb"]
        flat = None
        note = "one member count so far: compare runs at other --members"
        if len(peaks) > 1:
            low, high = peaks[min(peaks)], peaks[max(peaks)]
            flat = high <= 1.25 * low + 50
            note = f"peak by members: {dict(sorted(peaks.items()))}"
        out.append(_target("outbound: peak RSS flat in members (MB)", "flat", o["pipeline"]["peak_rss_mb"], flat,
                           "grows with members", note))
        peak = o["pipeline"]["peak_rss_mb"]
        out.append(_target("outbound: peak RSS (MB)", f"<= {OUTBOUND_PEAK_MB} at 10M", peak,
                           peak <= OUTBOUND_PEAK_MB, f"{peak - OUTBOUND_PEAK_MB:+.0f} MB",
                           "" if members >= 10_000_000 else "indicative below 10M"))
        r = result["outbound"]["requests_vs_change"]
        ok = r["records_per_changed"] is not None and r["records_per_changed"] <= 1.1 \
            and r["requests"] == r["expected_requests"]
        out.append(_target("requests ∝ change: records sent / members changed", "<= 1.1 (5.5 % for 5 %)",
                           r["records_per_changed"], ok, f"{r['records_per_changed']} / {r['requests']} requests",
                           f"records {r['record_share']:.2%} of members, changed {r['changed_share']:.2%}; "
                           f"requests {r['requests']} = ceil(records/batch) + events: {r['expected_requests']}"))
    if "rerun" in result:
        rr = result["rerun"]["summary"]
        req = rr["requests"]
        out.append(_target("re-run: requests", "0", req["total"], req["total"] == 0,
                           f"{req['total']} requests ({req['records']} records, {req['triggers']} triggers, "
                           f"{req['other']} bootstrap)", json.dumps(req["by_route"])))
        out.append(_target("re-run: processing / first run", "<= 0.10", rr["ratio"], rr["ratio"] <= 0.10,
                           f"{rr['ratio'] / 0.10:.1f}x over ({rr['processing_s']} s vs "
                           f"{0.10 * rr['first_run_processing_s']:.2f} s allowed)"))
    return out


def load_history(out_dir: Path, exclude: Path | None = None) -> list[dict]:
    """Earlier results (newest per member count), for the 'flat in members' comparison."""
    latest: dict[int, dict] = {}
    for path in sorted(out_dir.glob("*.json")):
        if path == exclude:
            continue
        try:
            data = json.loads(path.read_text())
            latest[data["meta"]["members"]] = data
        except (ValueError, KeyError):
            continue
    return list(latest.values())


# -- rendering ------------------------------------------------------------------------------------

def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        value = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    meta = result["meta"]
    out = []
    rows = []
    for fmt, proc in result.get("processing", {}).items():
        s = proc["summary"]
        rows.append([fmt, "Dagster run (4 assets, checks, publish)", _fmt(s["pipeline_s"], " s"), _fmt(s["ratio"], "×"),
                     _fmt(s["pipeline_rows_per_s"]), _fmt(s["pipeline_peak_rss_mb"], " MB")])
        for step, seconds in s["steps"].items():
            rows.append([fmt, f"  {step}", _fmt(seconds, " s"), "", "", ""])
        rows.append([fmt, "  Dagster's own (run start, events, between steps)", _fmt(s["dagster_own_s"], " s"),
                     "", "", ""])
        rows.append([fmt, "  (before the run, not in it) the process's first Dagster instance",
                     _fmt(s["instance_s"], " s"), "", "", ""])
        rows.append([fmt, "bare DuckDB reference (both days)", _fmt(s["reference_s"], " s"), "1×",
                     _fmt(s["reference_rows_per_s"]), _fmt(s["reference_peak_rss_mb"], " MB")])
        rows.append([fmt, "checks passed / same rows as reference",
                     f"{s['checks_passed']} / {s['same_rows_as_reference']}", "", "", ""])
    if rows:
        out.append((f"Daily processing of day 2, {meta['members']:,} members (median of {meta['repeats']})",
                    ["format", "stage", "wall", "vs reference", "rows/s", "peak RSS"], rows))
    if "outbound" in result:
        o = result["outbound"]["summary"]
        rows = []
        for name, label in (("pipeline", "pipeline (deliver_accounts + deliver_events)"), ("raw", "raw httpx loop")):
            s = o[name]
            if s is None:  # --skip-raw
                continue
            req = s["requests"]
            client_busy = s["client_cpu_s"] / s["seconds"] if s["seconds"] else None
            rows.append([label, _fmt(s["seconds"], " s"), _fmt(s["records_per_s"]), _fmt(s["events_per_s"]),
                         f"{req['records']:,} + {req['triggers']:,} (+{req['other']})", _fmt(s["requests_per_s"]),
                         _fmt(s["peak_rss_mb"], " MB"), _fmt(client_busy), _fmt(s["emulator_busy"])])
        out.append((f"Outbound of day 2: {o['pipeline']['records']:,} records, {o['pipeline']['events']:,} events, "
                    f"concurrency {meta['settings']['concurrency']} (median of {len(o['ratios'])}); "
                    f"throughput pipeline / raw = {o['ratio']} (accounts {o['ratio_accounts']}, "
                    f"events {o['ratio_events']})",
                    ["client", "wall", "records/s", "events/s", "requests (records + triggers, +bootstrap)",
                     "req/s", "peak RSS", "client CPU/wall", "emulator CPU/wall"], rows))
    if "rerun" in result:
        r = result["rerun"]["summary"]
        out.append(("Re-running the finished day 2",
                    ["processing", "vs first run", "outbound (Dagster, 3 assets)", "requests", "data requests"],
                    [[_fmt(r["processing_s"], " s"), _fmt(r["ratio"], "×"), _fmt(r["outbound_s"], " s"),
                      _fmt(r["requests"]["total"]), _fmt(r["requests"]["records"] + r["requests"]["triggers"])]]))
    rows = [[t["name"], t["target"], _fmt(t["measured"]), {True: "yes", False: "NO", None: "n/a"}[t["ok"]],
             t["miss_by"] or ""] for t in result["targets"]]
    out.append(("Targets", ["target", "wanted", "measured", "met", "missed by"], rows))
    return out


def render_text(result: dict) -> str:
    lines = [header(result)]
    for title, head, rows in tables(result):
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
        lines += ["", title, "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)),
                  "  ".join("-" * w for w in widths)]
        lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=False)) for row in rows]
    return "\n".join(lines)


def render_markdown(result: dict) -> str:
    lines = [f"# Bench {result['meta']['timestamp']}", "", header(result)]
    for title, head, rows in tables(result):
        lines += ["", f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    c = result.get("churn")
    if c:
        lines += ["", f"Churn of day 2: {c['changed_share']:.2%} of members changed ({c['by_kind']}), "
                  f"tier moves {c['tier_move_share']:.2%}, new {c['new_share']:.2%}, gone {c['gone_share']:.2%}, "
                  f"{c['events']:,} events ({c['events_share']:.2%})."]
    return "\n".join(lines) + "\n"


def header(result: dict) -> str:
    m = result["meta"]
    mc = m["machine"]
    return (f"{m['members']:,} members, formats {','.join(m['formats'])}, {m['repeats']} repeat(s); "
            f"{mc['cpus']} CPUs, {mc['mem_gib']} GiB, {mc['platform']}; load before/after "
            f"{m['load_before']} / {m.get('load_after')}; duckdb {mc['duckdb']}, git {mc['git']}"
            + (f" → {m['git_after']}" if m.get("git_after") and m["git_after"] != mc["git"] else ""))
