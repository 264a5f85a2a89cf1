"""The simulated program exported in each loyalty platform's shape (registered in generator.WRITERS).

Every writer reads the same text rows as the canonical one (`_accounts_text_sql`: clean members plus
the day's injected bad rows) and reshapes them, so a platform export maps back, through its adapter
in `loyalty_pipeline/ingest/platforms/`, onto exactly the canonical values. The shapes carry the platforms'
quirks on purpose:

* yotpo (`jsonl`): customer objects; a quarter in the webhook spelling (`is_opt_in`,
  `loyalty_opt_in_date`, `thirty_party_id`, `loyalty_next_points_expire_on`…, opt-out as null), no
  `vip_tier_name` key without a tier (as in Yotpo's own examples), opt-in timestamps as `…Z`, `+02:00`
  offsets or epoch milliseconds, the `0001-01-01 00:00:00 +0200` sentinel; a fifth of the API ones
  expire on inactivity (`points_expire_at`, no `next_points_expire_on`; the amount only when it is not
  the whole balance). (`csv`): a dashboard-style customer CSV ("Third Party ID", "Points Earned",
  "Opted In" Yes/No/empty…).
* loyaltylion (`jsonl`): `/v2/customers` objects; lifetime = approved + spent, with pending points on
  top (not yet earned), opted-out members either `enrolled: false` or `blocked: true`, a tier
  membership object (or null) whose tier carries both `number` (1-based) and `position` (as the API
  reference shows them) and bounds as decimal strings ÷ 100, `started_at` as "YYYY-MM-DD 00:00:00Z";
  expiry merged in as `expire_points_at` / `points_to_expire`.
* voucherify (`jsonl`): v1 loyalty-card members (`holder_id`) with the joins an extraction adds
  (`customer`, and the tiers endpoint's list under `tiers`: `{from, to}` point ranges); the members
  without a tier as v2 memberships (`member`, `cards[].card` balances and lifetime bucket,
  `tier_progress: null`) with their `customer` joined. (The adapter reads no tier start date from v2,
  so tiered members stay v1 for the canonical tier_since to come back.)

Activities and `injected_bad_rows.json` are the canonical writer's (same content, same `line`
convention: for JSON Lines the record number + 1).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

from ...ingest.platforms import PLATFORMS
from ...program import Program, normalize_tier_name
from .generator import WRITERS, Fmt, SimDay, _accounts_text_sql, _bad_rows_sql, _lit, write_canonical

_LINES = "FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIM '\x01'"  # one JSON text per line, as is
_INT = "'-?(0|[1-9][0-9]{0,17})'"


def _int(x: str) -> str:
    """A JSON number when the text is an integer, else the text as a JSON string (a bad value)."""
    return f"(CASE WHEN regexp_full_match({x}, {_INT}) THEN {x}::JSON ELSE to_json({x}) END)"


def _bool(x: str) -> str:
    return f"(CASE WHEN {x} IN ('true', 'false') THEN {x}::JSON ELSE to_json({x}) END)"


def _is_date(x: str) -> str:
    return f"(regexp_full_match({x}, '[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}') AND TRY_CAST({x} AS DATE) IS NOT NULL)"


def _rows_sql(day: SimDay, program: Program, with_bad: bool) -> str:
    """The day's text rows + the tier's rank, threshold and upper bound (NULL for unknown names)."""
    tiers = program.ordered_tiers()
    defs = ", ".join(
        f"({_lit(alias)}, {rank}, {t.threshold}, "
        f"{tiers[rank].threshold - 1 if rank < len(tiers) else 'NULL'})"
        for rank, t in enumerate(tiers, 1)
        for alias in {normalize_tier_name(n) for n in [t.name, *t.aliases]}
    )
    return f"""
        SELECT r.*, d.rank, d.lower, d.upper, h(r._k, 0, 'platform') AS hp
        FROM ({_accounts_text_sql(day, with_bad)}) r
        LEFT JOIN (VALUES {defs}) d(alias, rank, lower, upper) ON d.alias = lower(trim(nfc_normalize(r.tier)))"""


def _yotpo_jsonl(rows: str) -> str:
    webhook = "hp % 4 = 0"
    member_since = f"""CASE
        WHEN member_since = '0001-01-01' THEN to_json('0001-01-01 00:00:00 +0200')
        WHEN NOT coalesce({_is_date('member_since')}, false) THEN to_json(member_since)
        WHEN hp % 3 = 0 THEN to_json(member_since || 'T' || lpad((8 + hp % 12)::VARCHAR, 2, '0') || ':15:00.000Z')
        WHEN hp % 3 = 1 THEN to_json(member_since || 'T10:15:00+02:00')
        ELSE epoch_ms(member_since::DATE + INTERVAL 12 HOUR)::JSON END"""
    spend = f"to_json(CASE WHEN regexp_full_match(lifetime_points, {_INT}) THEN lifetime_points::BIGINT * 10 END)"
    # Expiry on inactivity: only points_expire_at (a timestamp); its amount, unless it is the whole balance.
    inactive = f"hp % 5 = 1 AND coalesce({_is_date('next_expiry_date')}, false)"
    whole = "next_expiry_amount = points_balance"
    api = f"""json_object(
        'total_spend_cents', {spend}, 'email', email, 'points_earned', {_int('lifetime_points')},
        'points_balance', {_int('points_balance')},
        'points_expire_at', CASE WHEN {inactive} THEN next_expiry_date || 'T07:33:17.000Z' END,
        'third_party_id', customer_id,
        'opt_in', {_bool('enrolled')}, 'opted_in_at', {member_since}, 'has_store_account', true,
        'credit_balance', '€0', 'vip_tier_name', tier, 'vip_tier_entry_date', tier_since,
        'vip_tier_expiration', NULL, 'next_points_expire_on', CASE WHEN NOT ({inactive}) THEN next_expiry_date END,
        'next_points_expire_amount', CASE WHEN NOT ({inactive} AND {whole}) THEN {_int('next_expiry_amount')} END)"""
    opt_in = f"CASE WHEN enrolled = 'false' AND hp % 8 = 0 THEN NULL ELSE {_bool('enrolled')} END"
    hook = f"""json_object(
        'total_spend_cents', {spend}, 'is_member', {_bool('enrolled')}, 'email', email,
        'points_balance', {_int('points_balance')}, 'points_earned', {_int('lifetime_points')},
        'thirty_party_id', customer_id, 'third_party_id', CASE WHEN hp % 8 = 4 THEN NULL ELSE customer_id END,
        'referral_link', 'http://rwrd.io/' || substr(md5(_k::VARCHAR), 1, 7), 'is_opt_in', {opt_in},
        'loyalty_opt_in_date', CASE WHEN member_since = '0001-01-01' THEN '0001-01-01 00:00:00 +0200'
                                    ELSE member_since END,
        'credit_balance', '$0', 'vip_tier_name', tier, 'vip_tier_entry_date', tier_since, 'vip_tier_ends_at', NULL,
        'loyalty_next_points_expire_on', next_expiry_date,
        'loyalty_next_points_expire_amount', {_int('next_expiry_amount')})"""
    # Yotpo leaves vip_tier_name out when there is no tier (a JSON merge patch null removes the key).
    no_tier = """CASE WHEN tier IS NULL THEN '{"vip_tier_name": null}' ELSE '{}' END"""
    return (f"SELECT json_merge_patch(CASE WHEN {webhook} THEN {hook} ELSE {api} END, {no_tier}) AS line "
            f"FROM ({rows}) ORDER BY _k, _s")


def _yotpo_csv(rows: str) -> str:
    def part(i: int) -> str:  # "anna.martin12@…" → "Anna", "Martin"
        word = f"regexp_replace(split_part(split_part(trim(lower(email)), '@', 1), '.', {i}), '[0-9]+', '')"
        return f"upper(left({word}, 1)) || substr({word}, 2)"

    return f"""
        SELECT email AS "Email", customer_id AS "Third Party ID", {part(1)} AS "First Name",
            {part(2)} AS "Last Name",
            CASE enrolled WHEN 'true' THEN 'Yes' WHEN 'false' THEN CASE WHEN hp % 2 = 0 THEN 'No' END
                 ELSE enrolled END AS "Opted In",
            points_balance AS "Points Balance", lifetime_points AS "Points Earned", tier AS "VIP Tier",
            tier_since AS "VIP Tier Entry Date", member_since AS "Opted In At",
            next_expiry_date AS "Next Points Expire On", next_expiry_amount AS "Next Points Expire Amount",
            'http://rwrd.io/' || substr(md5(_k::VARCHAR), 1, 7) AS "Referral Link"
        FROM ({rows}) ORDER BY _k, _s"""


def _loyaltylion_jsonl(rows: str) -> str:
    ints = f"regexp_full_match(points_balance, {_INT}) AND regexp_full_match(lifetime_points, {_INT})"
    gap = "(lifetime_points::BIGINT - points_balance::BIGINT)"  # spent: approved + spent = lifetime
    pending = "CASE WHEN enrolled = 'true' AND hp % 3 = 0 THEN (hp % 25) * 12 ELSE 0 END"  # not earned yet
    opted_out = "(enrolled = 'false' AND member_since IS NOT NULL)"
    bound = "CASE WHEN {0} IS NULL THEN NULL ELSE printf('%.2f', {0} / 100.0) END"
    tier = f"""json_object('id', 14 + rank, 'name', tier, 'number', rank, 'default', rank = 1, 'hidden', false,
        'lower_bound', {bound.format('lower')}, 'upper_bound', {bound.format('upper')}, 'position', rank - 1)"""
    membership = f"""CASE WHEN tier IS NULL THEN NULL ELSE json_object(
        'started_at', CASE WHEN {_is_date('tier_since')} THEN tier_since || ' 00:00:00Z' ELSE tier_since END,
        'expires_at', NULL, 'manual', hp % 50 = 0,
        'loyalty_tier', {tier})
        END"""
    return f"""
        SELECT json_object(
            'id', _k * 10 + _s, 'merchant_id', customer_id, 'email', email,
            'points_approved', {_int('points_balance')},
            'points_pending', ({pending})::JSON,
            'points_spent', CASE WHEN {ints} THEN {gap}::JSON ELSE {_int('lifetime_points')} END,
            'rewards_claimed', hp % 4, 'properties', json_object('name', NULL), 'metadata', json_object(),
            'birthday', NULL,
            'blocked', {opted_out} AND hp % 2 = 0,
            'guest', member_since IS NULL,
            'enrolled', CASE WHEN {opted_out} AND hp % 2 = 0 THEN 'true'::JSON ELSE {_bool('enrolled')} END,
            'enrolled_at', CASE WHEN {_is_date('member_since')}
                                THEN member_since || 'T' || lpad((hp % 24)::VARCHAR, 2, '0') || ':30:00.000Z'
                                ELSE member_since END,
            'referral_id', substr(md5(_k::VARCHAR), 1, 3), 'referred_by', NULL,
            'loyalty_tier_membership', {membership},
            'insights_segment', ['Loyal', 'At Risk', 'Defected', NULL][1 + hp % 4],
            'expire_points_at', CASE WHEN {_is_date('next_expiry_date')} THEN next_expiry_date || 'T00:00:00.000Z'
                                     ELSE next_expiry_date END,
            'points_to_expire', {_int('next_expiry_amount')}) AS line
        FROM ({rows}) ORDER BY _k, _s"""


def _voucherify_jsonl(rows: str) -> str:
    card = "substr(md5(_k::VARCHAR || '/' || _s::VARCHAR), 1, 20)"
    customer = "'cust_' || substr(md5('c' || _k::VARCHAR || '/' || _s::VARCHAR), 1, 24)"
    camp = "'camp_AQZ1GLRlbGaC2dETd31VbJQ9'"
    ints = f"regexp_full_match(points_balance, {_INT}) AND regexp_full_match(lifetime_points, {_INT})"
    created = f"CASE WHEN {_is_date('member_since')} THEN member_since || 'T09:12:44.000Z' ELSE member_since END"
    joined_customer = f"json_object('id', {customer}, 'source_id', customer_id, 'email', email, 'object', 'customer')"
    tier = f"""json_object('id', 'ltr_' || substr(md5(coalesce(rank, 0)::VARCHAR), 1, 18), 'name', tier,
        'campaign_id', {camp}, 'points', json_object('from', lower, 'to', upper),
        'expiration', json_object('customer_id', {customer}, 'campaign_id', {camp}, 'start_date', tier_since,
                                  'expiration_date', NULL),
        'object', 'loyalty_tier')"""
    v1 = f"""json_object(
            'id', 'v_' || {card}, 'code', upper(substr({card}, 1, 8)), 'campaign', 'Loyalty programme',
            'campaign_id', {camp}, 'category', NULL, 'type', 'LOYALTY_CARD',
            'loyalty_card', json_object(
                'points', {_int('lifetime_points')}, 'balance', {_int('points_balance')},
                'next_expiration_date', next_expiry_date, 'next_expiration_points', {_int('next_expiry_amount')},
                'pending_points', 0, 'expired_points', 0,
                'subtracted_points', CASE WHEN {ints} THEN lifetime_points::BIGINT - points_balance::BIGINT END),
            'active', {_bool('enrolled')},
            'holder_id', {customer},
            'customer', {joined_customer},
            'tiers', json_object('object', 'list', 'data_ref', 'data',
                                 'data', CASE WHEN tier IS NULL THEN json_array() ELSE json_array({tier}) END,
                                 'total', CASE WHEN tier IS NULL THEN 0 ELSE 1 END),
            'created_at', {created},
            'object', 'voucher')"""
    program = "'lprg_1247277e5f7bc4600c'"
    v2 = f"""json_object(
            'member', json_object('id', 'lmbr_' || substr({card}, 1, 18), 'customer_id', {customer},
                'program_id', {program},
                'status', CASE enrolled WHEN 'true' THEN 'ACTIVE' WHEN 'false' THEN 'INACTIVE' ELSE enrolled END,
                'metadata', json_object(), 'created_at', {created}, 'updated_at', {created}, 'object', 'member'),
            'program', json_object('id', {program}, 'name', 'Loyalty programme', 'status', 'ACTIVE',
                                   'metadata', json_object(), 'object', 'program'),
            'cards', json_array(json_object('member_role', 'OWNER', 'created_at', {created}, 'tier_progress', NULL,
                'card', json_object('id', 'lcrd_' || substr({card}, 1, 18),
                    'card_definition_id', 'lcdef_1246fad06006bfd506', 'card_type', 'INDIVIDUAL',
                    'code', 'CARD-' || upper(substr({card}, 1, 7)),
                    'lifetime_bucket', json_object(
                        'points', json_object('total', {_int('lifetime_points')}, 'earned', {_int('lifetime_points')},
                            'added', 0, 'subtracted', 0, 'expired', 0,
                            'spent', CASE WHEN {ints} THEN lifetime_points::BIGINT - points_balance::BIGINT END,
                            'refunded', 0, 'returned', 0, 'locked', 0, 'unlocked', 0),
                        'pending_points', json_object('total', 0, 'activated', 0, 'canceled', 0)),
                    'balance', json_object('points', {_int('points_balance')}, 'pending_points', 0),
                    'next_expiration', CASE WHEN next_expiry_date IS NULL AND next_expiry_amount IS NULL THEN NULL
                        ELSE json_object('points', {_int('next_expiry_amount')}, 'date', next_expiry_date) END,
                    'next_activation', NULL, 'object', 'card'),
                'object', 'member_card')),
            'object', 'membership',
            'customer', {joined_customer})"""
    return f"""
        SELECT CASE WHEN tier IS NULL THEN {v2} ELSE {v1} END AS line
        FROM ({rows}) ORDER BY _k, _s"""


_SHAPES = {
    ("yotpo", "jsonl"): (_yotpo_jsonl, _LINES),
    ("yotpo", "csv"): (_yotpo_csv, "FORMAT csv, HEADER true"),
    ("loyaltylion", "jsonl"): (_loyaltylion_jsonl, _LINES),
    ("voucherify", "jsonl"): (_voucherify_jsonl, _LINES),
}


# The formats each platform is written in, the first one by default (the canonical writer's, then _SHAPES).
FORMATS: dict[str, tuple[str, ...]] = {"canonical": ("csv", "parquet", "jsonl")}
for _platform, _fmt in _SHAPES:
    FORMATS[_platform] = (*FORMATS.get(_platform, ()), _fmt)
DEFAULT_FORMAT = {platform: formats[0] for platform, formats in FORMATS.items()}


def _writer(platform: str):
    def write(con: duckdb.DuckDBPyConnection, day: SimDay, day_dir: Path, *, program: Program,
              fmt: Fmt | None = None, bad_row_rate: float = 0.0, activities: bool = True) -> None:
        fmt = fmt or DEFAULT_FORMAT[platform]
        if (platform, fmt) not in _SHAPES:
            raise ValueError(f"{platform} exports are {' or '.join(FORMATS[platform])}, not {fmt}")
        shape, options = _SHAPES[platform, fmt]
        n_bad = int(round(bad_row_rate * day.members))
        if n_bad:  # the canonical writer below rebuilds the same (deterministic) rows and drops them
            con.execute(_bad_rows_sql(day, n_bad, program))
        target = day_dir / f"{program.source.accounts_file}.{fmt}"
        con.execute(f"COPY ({shape(_rows_sql(day, program, n_bad > 0))}) TO {_lit(str(target))} ({options})")
        # Activities and the injected-rows list: the canonical writer's, written aside and moved here.
        scratch = day_dir / ".canonical"
        scratch.mkdir(exist_ok=True)
        try:
            write_canonical(con, day, scratch, program=program, fmt=fmt, bad_row_rate=bad_row_rate,
                            activities=activities)
            for name in ("injected_bad_rows.json", f"{program.source.activities_file}.{fmt}"):
                if (scratch / name).exists():
                    (scratch / name).replace(day_dir / name)
        finally:
            shutil.rmtree(scratch)

    write.__name__ = f"write_{platform}"
    write.__doc__ = f"Write one day's {platform} export, activities and injected_bad_rows.json."
    return write


for _platform in FORMATS.keys() - WRITERS.keys():
    WRITERS[_platform] = _writer(_platform)


def simulated_platforms() -> list[str]:
    """The platforms of the ingest's registry the simulator writes (a platform without a writer is not offered)."""
    return [name for name in PLATFORMS if name in WRITERS]
