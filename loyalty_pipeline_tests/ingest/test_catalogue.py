"""Bad input, one case per hazard and per platform shape where it applies.

Every case ends either with its rows in `snapshots` / `quarantine` (the reason naming file, line,
field and value; raw = snapshot + quarantine) or as a failed day whose message says what to fix and
which wrote nothing. Each case writes a real export file and calls the ingest and snapshot steps on a
real DuckDB file, as their assets do (helpers.ingest_day: the fast layer, no Dagster run). The cases about
a check run the real daily job: the unknown tier (tiers_known) and the volume collapse (the whole job).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
import yaml

from loyalty_pipeline.program import ProgramError, load_program
from loyalty_pipeline.run_tags import CONFIRM_TAG
from loyalty_pipeline_tests.harness import DEFAULT_PROGRAM, Pipeline
from loyalty_pipeline_tests.ingest.helpers import counts, ingest_day, run_ingest, run_with_tags
from loyalty_pipeline_tests.operations.helpers import checks_of, materialized

DAY = "2026-03-10"
SHAPES = ["yotpo", "yotpo_csv", "loyaltylion", "voucherify"]
JSON_SHAPES = ["yotpo", "loyaltylion", "voucherify"]
DROP = object()  # a raw override that removes the key
CSV_HEADERS = {  # the Yotpo dashboard-style headers the sample writer uses, per canonical column
    "email": "Email", "customer_id": "Third Party ID", "enrolled": "Opted In", "points_balance": "Points Balance",
    "lifetime_points": "Points Earned", "tier": "VIP Tier", "tier_since": "VIP Tier Entry Date",
    "member_since": "Opted In At", "next_expiry_date": "Next Points Expire On",
    "next_expiry_amount": "Next Points Expire Amount",
}


def member(shape: str, cid: object = "C1", *, email: object = "", enrolled: object = True, balance: object = 100,
           lifetime: object = 150, tier: object = "Bronze", tier_since: object = "2026-01-01",
           member_since: object = "2025-06-01", expiry_date: object = None, expiry_amount: object = None,
           raw: dict | None = None) -> dict:
    """One member in `shape`, from canonical values; `raw` overrides source keys (dotted paths)."""
    email = f"{str(cid).lower()}@example.com" if email == "" else email
    ints = isinstance(balance, int) and isinstance(lifetime, int)
    if shape == "yotpo":
        record = {"email": email, "third_party_id": cid, "opt_in": enrolled, "points_balance": balance,
                  "points_earned": lifetime, "vip_tier_name": tier, "vip_tier_entry_date": tier_since,
                  "opted_in_at": member_since, "next_points_expire_on": expiry_date,
                  "next_points_expire_amount": expiry_amount}
    elif shape == "yotpo_csv":
        values = {"email": email, "customer_id": cid, "enrolled": {True: "Yes", False: "No"}.get(enrolled, enrolled),
                  "points_balance": balance, "lifetime_points": lifetime, "tier": tier, "tier_since": tier_since,
                  "member_since": member_since, "next_expiry_date": expiry_date, "next_expiry_amount": expiry_amount}
        record = {CSV_HEADERS[k]: "" if v is None else str(v) for k, v in values.items()}
    elif shape == "loyaltylion":
        membership = None if tier is None else {
            "started_at": tier_since, "expires_at": None, "manual": False,
            "loyalty_tier": {"id": 15, "name": tier, "position": 1, "default": True, "hidden": False,
                             "lower_bound": "0.00", "upper_bound": None}}
        record = {"id": 7, "merchant_id": cid, "email": email, "points_approved": balance, "points_pending": 0,
                  "points_spent": lifetime - balance if ints else lifetime, "blocked": False, "guest": False,
                  "enrolled": enrolled, "enrolled_at": member_since, "loyalty_tier_membership": membership,
                  "expire_points_at": expiry_date, "points_to_expire": expiry_amount}
    else:
        tiers = [] if tier is None else [{"id": "ltr_1", "name": tier, "points": {"from": 0, "to": None},
                                          "expiration": {"start_date": tier_since, "expiration_date": None}}]
        record = {"id": f"v_{cid}", "code": "X", "type": "LOYALTY_CARD", "active": enrolled,
                  "loyalty_card": {"points": lifetime, "balance": balance, "next_expiration_date": expiry_date,
                                   "next_expiration_points": expiry_amount},
                  "customer": {"id": "cust_1", "source_id": cid, "email": email},
                  "tiers": {"object": "list", "data_ref": "data", "data": tiers, "total": len(tiers)},
                  "created_at": member_since}
    for path, value in (raw or {}).items():
        *parents, key = path.split(".")
        node = record
        for parent in parents:
            node = node[parent]
        if value is DROP:
            del node[key]
        else:
            node[key] = value
    return record


def render(shape: str, rows: list[dict]) -> str:
    if shape == "yotpo_csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(CSV_HEADERS.values()),
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def line(shape: str, index: int) -> int:
    """The file line of rows[index]: CSV counts its header."""
    return index + (2 if shape == "yotpo_csv" else 1)


def pipeline_for(tmp_path: Path, shape: str, **source) -> Pipeline:
    program = yaml.safe_load(DEFAULT_PROGRAM.read_text())
    program["source"] = {**program["source"], "platform": "yotpo" if shape == "yotpo_csv" else shape, **source}
    for tier in program["tiers"]:
        if tier["name"] == "Platinum":
            tier["aliases"].append("Élite")  # a non-ASCII alias, for the NFC cases
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(program, allow_unicode=True), encoding="utf-8")
    return Pipeline(tmp_path, program_path=path)


def write(pipeline: Pipeline, shape: str, content: str | bytes, day: str = DAY) -> Path:
    path = pipeline.exports / day / f"accounts.{'csv' if shape == 'yotpo_csv' else 'jsonl'}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def ingest(tmp_path: Path, shape: str, rows: list[dict], **source) -> Pipeline:
    """Write `rows`, ingest the day, check it succeeded and reconciles; the pipeline for more checks."""
    pipeline = pipeline_for(tmp_path, shape, **source)
    path = write(pipeline, shape, render(shape, rows))
    day = ingest_day(pipeline, DAY)
    assert day.success, day.message
    raw, members, quarantined = counts(pipeline, DAY)  # the query of the rows_reconcile check
    assert raw == len(rows) == members + quarantined
    assert day.stats["reconciles"]
    assert {r[0] for r in pipeline.query("SELECT DISTINCT source_file FROM quarantine")} <= {str(path)}
    return pipeline


def quarantine(pipeline: Pipeline) -> list[tuple]:
    return pipeline.query("SELECT source_line, customer_id, field, value, reason FROM quarantine ORDER BY ALL")


def snapshot(pipeline: Pipeline, columns: str) -> list[tuple]:
    return pipeline.query(f"SELECT {columns} FROM snapshots ORDER BY source_line")


def fails(tmp_path: Path, shape: str, content: str | bytes, *expected: str, **source) -> str:
    """Write `content`, ingest the day: it fails, naming the file and `expected`, and writes nothing."""
    pipeline = pipeline_for(tmp_path, shape, **source)
    path = write(pipeline, shape, content)
    day = ingest_day(pipeline, DAY)
    message = day.message
    assert not day.success
    assert str(path) in message, message
    for text in expected:
        assert text in message, message
    for table in ("export_files", "raw_accounts", "snapshots", "quarantine"):
        assert pipeline.table(table, DAY) == [], table
    return message


# -- rows: quarantined with file, line, field and value, or kept (with a flag) ------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_duplicate_member_the_first_line_wins(tmp_path, shape):
    rows = [member(shape, "C1"), member(shape, "C2"), member(shape, "C1", balance=999, email="other@example.com")]
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == [(line(shape, 2), "C1", "customer_id", "C1", "duplicate_member")]
    assert snapshot(pipeline, "customer_id, points_balance") == [("C1", 100), ("C2", 100)]


@pytest.mark.parametrize("shape", ["yotpo", "yotpo_csv"])
def test_yotpo_same_email_under_another_id_is_a_duplicate(tmp_path, shape):
    rows = [member(shape, "C1", email="anna@example.com"), member(shape, "C2", email=" Anna@Example.com "),
            member(shape, "C3", email="not-an-email"), member(shape, "C4", email="not-an-email")]
    pipeline = ingest(tmp_path, shape, rows)
    # Email is Yotpo's key (trimmed, case-folded); an invalid address identifies no one.
    assert quarantine(pipeline) == [(line(shape, 1), "C2", "email", " Anna@Example.com ", "duplicate_member")]
    assert [r[0] for r in snapshot(pipeline, "customer_id")] == ["C1", "C3", "C4"]


@pytest.mark.parametrize("shape", ["loyaltylion", "voucherify"])
def test_a_shared_email_is_not_a_duplicate_where_ids_are_the_key(tmp_path, shape):
    rows = [member(shape, "C1", email="family@example.com"), member(shape, "C2", email="family@example.com")]
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == []
    assert snapshot(pipeline, "customer_id, email") == [("C1", "family@example.com"), ("C2", "family@example.com")]


@pytest.mark.parametrize("shape", SHAPES)
def test_missing_id(tmp_path, shape):
    rows = [member(shape, "C1"), member(shape, None, email="x@example.com")]
    if shape == "yotpo":
        rows.append(member(shape, "C3", raw={"third_party_id": DROP}))  # absent, not null
    pipeline = ingest(tmp_path, shape, rows)
    expected = [(line(shape, 1), None, "customer_id", None, "missing_id")]
    if shape == "yotpo":
        expected.append((line(shape, 2), None, "customer_id", None, "missing_id"))
    assert quarantine(pipeline) == expected


@pytest.mark.parametrize("shape", SHAPES)
def test_id_cast_to_float(tmp_path, shape):
    # JSON: a number that lost its digits (shown as 1.2345e+12), and a spreadsheet's text in every shape.
    as_number = "1.2345e+12" if shape == "yotpo_csv" else 1.2345e12
    rows = [member(shape, "C1"), member(shape, as_number), member(shape, "1.2345E+12")]
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line(shape, 1), "1.2345e+12", "customer_id", "1.2345e+12", "id_in_scientific_notation"),
        (line(shape, 2), "1.2345E+12", "customer_id", "1.2345E+12", "id_in_scientific_notation"),
    ]


@pytest.mark.parametrize("shape", SHAPES)
def test_ids_stay_text(tmp_path, shape):
    rows = [member(shape, "0004521000123"), member(shape, "anna.martin@example.com"), member(shape, 4302977345)]
    pipeline = ingest(tmp_path, shape, rows)
    assert [r[0] for r in snapshot(pipeline, "customer_id")] == [
        "0004521000123", "anna.martin@example.com", "4302977345"]


@pytest.mark.parametrize("shape", SHAPES)
def test_negative_and_non_numeric_points(tmp_path, shape):
    rows = [
        member(shape, "C1", balance=-40, lifetime=100),  # legitimate (refund after redemption): kept, flagged
        member(shape, "C2", balance="12a"),
        member(shape, "C3", balance=1.5),
        member(shape, "C4", balance=0, lifetime="x"),
        member(shape, "C5", balance=0, lifetime=-5),
    ]
    pipeline = ingest(tmp_path, shape, rows)
    # LoyaltyLion's lifetime is approved + pending + spent: the value names the part that was wrong.
    lifetime_x = "points_spent=x" if shape == "loyaltylion" else "x"
    assert quarantine(pipeline) == [
        (line(shape, 1), "C2", "points_balance", "12a", "invalid_integer"),
        (line(shape, 2), "C3", "points_balance", "1.5", "invalid_integer"),
        (line(shape, 3), "C4", "lifetime_points", lifetime_x, "invalid_integer"),
        (line(shape, 4), "C5", "lifetime_points", "-5", "negative_lifetime"),
    ]
    assert snapshot(pipeline, "customer_id, points_balance, dq_flags") == [("C1", -40, ["negative_balance"])]


def test_loyaltylion_names_the_wrong_part_of_lifetime(tmp_path):
    rows = [member("loyaltylion", "C1", raw={"points_spent": "12a"}),
            member("loyaltylion", "C2", raw={"points_spent": None}),
            member("loyaltylion", "C3", raw={"points_pending": "12a"})]  # pending points are not lifetime yet
    pipeline = ingest(tmp_path, "loyaltylion", rows)
    assert quarantine(pipeline) == [(1, "C1", "lifetime_points", "points_spent=12a", "invalid_integer"),
                                    (2, "C2", "lifetime_points", "points_spent=null", "invalid_integer")]


@pytest.mark.parametrize("shape", SHAPES)
def test_unknown_tier_is_quarantined_never_guessed(tmp_path, shape):
    pipeline = pipeline_for(tmp_path, shape)
    write(pipeline, shape, render(shape, [member(shape, "C1"), member(shape, "C2", tier="Diamond")]))
    result = run_ingest(pipeline, DAY)
    assert quarantine(pipeline) == [(line(shape, 1), "C2", "tier", "Diamond", "unknown_tier")]
    # Configuration drift, not a bad row: by default the day stops until an alias is added.
    check = checks_of(result)["tiers_known"]
    assert not result.success and not check.passed and "'Diamond' (1)" in check.description


@pytest.mark.parametrize("shape", SHAPES)
def test_tier_name_variants_map_through_the_aliases(tmp_path, shape):
    names = ["GOLD", " loyal SILVER ", "Power User", "E\u0301LITE", "Base", ""]  # É decomposed (NFD)
    rows = [member(shape, f"C{i}", tier=name) for i, name in enumerate(names)]
    rows.append(member(shape, "C9", tier=None))
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == []
    assert [r[0] for r in snapshot(pipeline, "tier")] == ["Gold", "Silver", "Gold", "Platinum", "Bronze", None, None]


@pytest.mark.parametrize("shape", SHAPES)
def test_sentinel_and_malformed_dates(tmp_path, shape):
    rows = [
        member(shape, "C1", member_since="0001-01-01 00:00:00 +0200", tier_since="1004-05-06"),
        member(shape, "C2", member_since="2026-13-45"),
        member(shape, "C3", expiry_date="2026-02-30", expiry_amount=10),
        member(shape, "C4", tier_since="yesterday"),
    ]
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == [
        (line(shape, 1), "C2", "member_since", "2026-13-45", "invalid_date"),
        (line(shape, 2), "C3", "next_expiry_date", "2026-02-30", "invalid_date"),
        (line(shape, 3), "C4", "tier_since", "yesterday", "invalid_date"),
    ]
    assert snapshot(pipeline, "customer_id, member_since, tier_since, dq_flags") == [
        ("C1", None, None, ["sentinel_date"])]


@pytest.mark.parametrize("shape", SHAPES)
def test_mixed_timestamp_formats(tmp_path, shape):
    written = ["2025-06-01", "2025-06-01T10:00:00Z", "2025-06-01 10:00:00Z", "2025-06-01T23:30:00-05:00",
               "2025-06-01T08:00:00.415+03:00", "2025-06-01 00:00:00 +0200", 1748779200000]  # epoch ms, 12:00Z
    rows = [member(shape, f"C{i}", member_since=w, tier_since=w, expiry_date=w, expiry_amount=5)
            for i, w in enumerate(written)]
    pipeline = ingest(tmp_path, shape, rows)
    june_1 = dt.date(2025, 6, 1)
    assert snapshot(pipeline, "member_since, tier_since, next_expiry_date") == [(june_1, june_1, june_1)] * len(rows)


@pytest.mark.parametrize("shape", SHAPES)
def test_booleans(tmp_path, shape):
    values = [True, False, "yes", "NO", 1, 0, None, "maybe"]  # None: JSON null / an empty cell
    rows = [member(shape, f"C{i}", enrolled=v) for i, v in enumerate(values)]
    pipeline = ingest(tmp_path, shape, rows)
    # A platform flag follows the 1/null convention: null is "no".
    assert [r[0] for r in snapshot(pipeline, "enrolled")] == [True, False, True, False, True, False, False]
    assert quarantine(pipeline) == [(line(shape, 7), "C7", "enrolled", "maybe", "invalid_boolean")]


def test_loyaltylion_blocked_is_not_a_member(tmp_path):
    rows = [member("loyaltylion", "C1", raw={"blocked": True}), member("loyaltylion", "C2", raw={"blocked": None}),
            member("loyaltylion", "C3", raw={"blocked": DROP}), member("loyaltylion", "C4", raw={"blocked": "?"})]
    pipeline = ingest(tmp_path, "loyaltylion", rows)
    assert snapshot(pipeline, "customer_id, enrolled") == [("C1", False), ("C2", True), ("C3", True)]
    assert quarantine(pipeline) == [(4, "C4", "enrolled", "blocked=?", "invalid_boolean")]


@pytest.mark.parametrize("shape", SHAPES)
def test_invalid_email_is_kept_without_the_address(tmp_path, shape):
    rows = [member(shape, "C1", email="not-an-email"), member(shape, "C2", email="[email protected]"),
            member(shape, "C3", email=" Zoë.Martin@Example.FR ")]
    pipeline = ingest(tmp_path, shape, rows)
    assert quarantine(pipeline) == []
    assert snapshot(pipeline, "customer_id, email, dq_flags") == [
        ("C1", None, ["invalid_email"]), ("C2", None, ["invalid_email"]), ("C3", "zoë.martin@example.fr", [])]


@pytest.mark.parametrize("shape", SHAPES)
def test_extra_unknown_columns_are_ignored(tmp_path, shape):
    rows = [member(shape, "C1", raw={"Referral Link" if shape == "yotpo_csv" else "referral_url": "https://x.y/1",
                                     "Favourite Colour" if shape == "yotpo_csv" else "favourite_colour": "blue"})]
    pipeline = ingest(tmp_path, shape, rows)
    assert snapshot(pipeline, "customer_id, points_balance, lifetime_points, tier") == [("C1", 100, 150, "Bronze")]


# -- files: read as they are meant, or the day fails saying what to fix ----------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_a_bom_is_skipped(tmp_path, shape):
    pipeline = pipeline_for(tmp_path, shape)
    write(pipeline, shape, b"\xef\xbb\xbf" + render(shape, [member(shape, "C1"), member(shape, "C2")]).encode())
    assert ingest_day(pipeline, DAY).success
    assert snapshot(pipeline, "customer_id, source_line") == [("C1", line(shape, 0)), ("C2", line(shape, 1))]


def _cp1252_rows(shape: str) -> list[dict]:
    # "Élite" and "€" differ between Windows-1252 and latin-1 (0x80) / are not UTF-8 once encoded.
    return [member(shape, "C1", tier="Élite", email="chloé@example.fr",
                   raw={"Note" if shape == "yotpo_csv" else "credit_balance": "€0"}), member(shape, "C2")]


@pytest.mark.parametrize("shape", SHAPES)
def test_windows_1252_is_decoded_when_configured(tmp_path, shape):
    pipeline = pipeline_for(tmp_path, shape, encoding="windows-1252")
    write(pipeline, shape, render(shape, _cp1252_rows(shape)).encode("cp1252"))
    assert ingest_day(pipeline, DAY).success
    assert snapshot(pipeline, "customer_id, email, tier") == [
        ("C1", "chloé@example.fr", "Platinum"), ("C2", "c2@example.com", "Bronze")]


@pytest.mark.parametrize("shape", SHAPES)
def test_windows_1252_read_as_utf8_fails_with_the_byte_offset(tmp_path, shape):
    content = render(shape, _cp1252_rows(shape)).encode("cp1252")
    offset = next(i for i, byte in enumerate(content) if byte >= 0x80)  # é, É or €, whichever comes first
    fails(tmp_path, shape, content, f"line {line(shape, 0)}, byte offset {offset}: {content[offset:offset + 1]!r} "
          "is not utf-8", "source.encoding")


@pytest.mark.parametrize("shape", SHAPES)
def test_undecodable_windows_1252_fails_with_the_byte_offset(tmp_path, shape):
    text = render(shape, [member(shape, "C1"), member(shape, "C2", tier="Bronze~~")])
    content = text.encode("cp1252").replace(b"~~", b"\x81")  # 0x81 has no character in Windows-1252
    offset = content.index(b"\x81")
    fails(tmp_path, shape, content, f"line {line(shape, 1)}, byte offset {offset}: b'\\x81' is not windows-1252",
          encoding="windows-1252")


@pytest.mark.parametrize("shape", SHAPES)
def test_truncated_last_line_fails_naming_the_line(tmp_path, shape):
    text = render(shape, [member(shape, "C1"), member(shape, "C2"), member(shape, "C3")])
    cut = text[: text.rstrip("\n").rindex(",")]  # the export stopped mid-record
    fails(tmp_path, shape, cut, f"line {line(shape, 2)}")


@pytest.mark.parametrize("shape", SHAPES)
def test_empty_file_fails(tmp_path, shape):
    fails(tmp_path, shape, b"", "empty")


@pytest.mark.parametrize("shape", SHAPES)
def test_header_only_or_blank_lines_fail(tmp_path, shape):
    if shape == "yotpo_csv":
        fails(tmp_path, shape, ",".join(CSV_HEADERS.values()) + "\n", "a header but no rows")
    else:
        fails(tmp_path, shape, "\n\n", "no JSON record")


@pytest.mark.parametrize(("shape", "key", "field", "reason"), [
    ("yotpo", "points_earned", "lifetime_points", "missing_field"),
    ("yotpo", "third_party_id", "customer_id", "missing_id"),
    ("loyaltylion", "points_spent", "lifetime_points", "missing_field"),
    ("voucherify", "loyalty_card.balance", "points_balance", "missing_field"),
    ("voucherify", "tiers", "tier", "missing_field"),
])
def test_a_required_field_one_record_lacks_quarantines_that_row(tmp_path, shape, key, field, reason):
    pipeline = ingest(tmp_path, shape, [member(shape, "C1"), member(shape, "C2", raw={key: DROP})])
    assert quarantine(pipeline) == [(2, None if field == "customer_id" else "C2", field, None, reason)]
    assert snapshot(pipeline, "customer_id") == [("C1",)]


@pytest.mark.parametrize(("shape", "key", "named"), [
    ("yotpo", "points_earned", "points_earned (lifetime_points)"),
    ("yotpo", "third_party_id", "third_party_id or thirty_party_id (customer_id)"),
    ("yotpo_csv", "Points Earned", "no column for lifetime_points"),
    ("loyaltylion", "points_spent", "points_spent (lifetime_points)"),
    ("voucherify", "loyalty_card.balance", "loyalty_card.balance or cards[0].card.balance.points (points_balance)"),
    ("voucherify", "tiers", "tiers.data or cards[0].tier_progress (tier)"),
])
def test_a_required_field_no_record_has_fails_the_day_naming_it(tmp_path, shape, key, named):
    rows = [member(shape, "C1", raw={key: DROP}), member(shape, "C2", raw={key: DROP})]
    message = fails(tmp_path, shape, render(shape, rows), named)
    assert "source.column_map" in message if shape == "yotpo_csv" else "no record has" in message


def test_yotpo_csv_headers_are_mapped_in_program_yaml(tmp_path):
    rows = [member("yotpo_csv", "C1")]
    rows = [{("Lifetime Pts" if k == "Points Earned" else k): v for k, v in r.items()} for r in rows]
    pipeline = pipeline_for(tmp_path, "yotpo_csv", column_map={"Lifetime Pts": "lifetime_points"})
    write(pipeline, "yotpo_csv", render("yotpo_csv", rows))
    assert ingest_day(pipeline, DAY).success
    assert snapshot(pipeline, "customer_id, lifetime_points") == [("C1", 150)]


def test_yotpo_csv_ambiguous_headers_fail_asking_for_a_mapping(tmp_path):
    rows = [{**member("yotpo_csv", "C1"), "Is Opt In": "No"}]
    fails(tmp_path, "yotpo_csv", render("yotpo_csv", rows), "'Opted In', 'Is Opt In' could all be enrolled",
          "source.column_map")


def test_column_map_targets_must_be_canonical_columns(tmp_path):
    with pytest.raises(ProgramError, match=r"source\.column_map: .*unknown column\(s\) lifetime"):
        load_program(pipeline_for(tmp_path, "yotpo_csv", column_map={"Lifetime Pts": "lifetime"}).program_path)


# -- volume: a collapsed export stops the outbound assets until an operator confirms ---------------------------

@pytest.mark.parametrize("shape", SHAPES)
def test_row_count_collapse_stops_the_day_until_confirmed(tmp_path, shape):
    pipeline = pipeline_for(tmp_path, shape)
    everyone = [member(shape, f"C{i:04}", balance=100 + i, lifetime=200 + i) for i in range(300)]
    write(pipeline, shape, render(shape, everyone), day="2026-03-09")
    write(pipeline, shape, render(shape, everyone[:60]))  # the file was cut short, cleanly
    pipeline.run("2026-03-09")

    blocked = run_with_tags(pipeline, DAY, {})
    check = checks_of(blocked)["member_count_within_band"]  # the operations check, reused
    assert not blocked.success and not check.passed
    assert "300 members on 2026-03-09 → 60 on 2026-03-10" in check.description and CONFIRM_TAG in check.description
    assert materialized(blocked) == {"loyalty_export", "loyalty_snapshot"}
    assert counts(pipeline, DAY) == (60, 60, 0)

    confirmed = run_with_tags(pipeline, DAY, {CONFIRM_TAG: "true"})
    assert confirmed.success and checks_of(confirmed)["member_count_within_band"].passed
    assert pipeline.query(f"SELECT count(*) FROM account_deltas WHERE snapshot_date = '{DAY}' "
                          "AND change_kind = 'removed'") == [(240,)]
