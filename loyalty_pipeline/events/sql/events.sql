-- Marketing events implied by $day (D), one row per event; the catalogue and its rules are in
-- loyalty_pipeline/events/catalogue.py and the README. P = $previous, the latest earlier snapshot, as in
-- account_deltas. Everything here is a function of the snapshots (and the day's activities), never
-- of previously stored events, so recomputing any day in any order gives the same rows. What changed
-- since P is read from D's deltas (a few % of the members), the snapshots only where a rule needs
-- them: the day's due reminders, and a few columns of the members the deltas name.
-- Needs temp tables `tiers` (warehouse.connection.prepare), `reminder_windows` and `approach_days`
-- (events.derive). Quarantine is not a membership change (DESIGN invariant 14): deltas already leave
-- out members rejected on D and compare those rejected on P with their last valid row; here a member
-- seen before only as a rejected row is not new either. When in doubt, say nothing to the customer.
WITH present AS (
    -- A member missing from D is a delta, not an opt-out: `removed` rows imply nothing.
    SELECT * FROM account_deltas WHERE snapshot_date = $day AND change_kind <> 'removed'
), continuing AS (
    -- Enrolled on P and on D: the members whose point and tier moves are news. A (re-)enrolment
    -- is reported by loyalty.enrolled alone, with its tier and balance.
    SELECT * FROM present WHERE change_kind = 'changed' AND enrolled_before AND enrolled_after
), on_day AS (
    -- D's row of the members a rule reads beyond their delta (their balance and email for points
    -- earned from activities, member_since for enrolments, email for approaching): one scan of D
    -- for the three of them instead of a scan each.
    SELECT customer_id, email, enrolled, points_balance, member_since
    FROM snapshots
    WHERE snapshot_date = $day
      AND customer_id IN (SELECT customer_id FROM present
                          UNION ALL SELECT customer_id FROM activities WHERE snapshot_date = $day)
), has_activities AS (
    SELECT count(*) > 0 AS yes FROM export_files WHERE snapshot_date = $day AND kind = 'activities'
),

points_from_activities AS (
    -- With an activities file: per customer and reason, the day's total when positive.
    SELECT 'loyalty.points_earned' AS code_name, d.customer_id, d.email, a.reason AS discriminator,
           json_object('points_amount', a.points, 'reason', a.reason, 'new_balance', d.points_balance) AS metadata
    FROM (SELECT customer_id, reason, sum(points) AS points FROM activities
          WHERE snapshot_date = $day GROUP BY ALL) a
    JOIN on_day d ON d.customer_id = a.customer_id
    WHERE d.enrolled AND a.points > 0 AND (SELECT yes FROM has_activities)
), points_from_lifetime AS (
    -- Without one: the rise of lifetime_points since P, for the program's default reason.
    SELECT 'loyalty.points_earned' AS code_name, customer_id, email, $default_reason AS discriminator,
           json_object('points_amount', lifetime_delta, 'reason', $default_reason,
                       'new_balance', balance_after) AS metadata
    FROM continuing
    WHERE lifetime_delta > 0 AND NOT (SELECT yes FROM has_activities)
), tier_moves AS (
    -- One event per move, however many ranks it spans; to or from "no tier" is never up or down.
    SELECT CASE tier_direction WHEN 'up' THEN 'loyalty.tier_upgraded'
                               WHEN 'down' THEN 'loyalty.tier_downgraded'
                               ELSE 'loyalty.tier_joined' END AS code_name,
           customer_id, email, tier_after AS discriminator,
           CASE tier_direction
               WHEN 'up' THEN json_object('previous_tier', tier_before, 'new_tier', tier_after)
               WHEN 'down' THEN json_object('previous_tier', tier_before, 'new_tier', tier_after,
                                            'grace_period_days', $grace_days)
               ELSE json_object('new_tier', tier_after) END AS metadata
    FROM continuing
    WHERE tier_direction IN ('up', 'down', 'joined')
), last_seen AS (
    -- Members absent from P: were they in an earlier export? Missing for a few days is not joining.
    -- (Absent from P: the snapshots before it are all there is to look at.)
    SELECT s.customer_id, arg_max(s.enrolled, s.snapshot_date) AS was_enrolled, max(s.snapshot_date) AS day
    FROM snapshots s SEMI JOIN (SELECT customer_id FROM present WHERE change_kind = 'new') n USING (customer_id)
    WHERE s.snapshot_date < $previous
    GROUP BY s.customer_id
), last_rejected AS (
    -- …or rejected by validation (quarantine keeps the id as written): a row was there, so not new.
    SELECT norm_text(q.customer_id) AS customer_id, max(q.snapshot_date) AS day
    FROM quarantine q
    WHERE q.kind = 'accounts' AND q.snapshot_date < $day
      AND norm_text(q.customer_id) IN (SELECT customer_id FROM present WHERE change_kind = 'new')
    GROUP BY ALL
), enrolments AS (
    -- New since P: never seen before, or last seen (validly, and not rejected since) not enrolled.
    -- Only recent enrolments are announced: a member_since older than max_event_age_days before D is held
    -- back (a platform migration adding long-standing members welcomes nobody); build_events counts them.
    -- json_merge_patch('{}', …) drops null fields: an optional field is omitted, never sent as null.
    SELECT 'loyalty.enrolled' AS code_name, n.customer_id, n.email, '' AS discriminator,
           json_merge_patch('{}', json_object('tier', n.tier_after, 'points_balance', n.balance_after)) AS metadata,
           coalesce(d.member_since < $day - $max_age, false) AS held_back
    FROM present n JOIN on_day d ON d.customer_id = n.customer_id
    LEFT JOIN last_seen l ON l.customer_id = n.customer_id LEFT JOIN last_rejected q ON q.customer_id = n.customer_id
    WHERE n.enrolled_after
      AND CASE n.change_kind
              WHEN 'new' THEN l.was_enrolled IS NOT true AND (q.day IS NULL OR q.day <= l.day)
              ELSE NOT n.enrolled_before END
), opt_outs AS (
    SELECT 'loyalty.opted_out' AS code_name, customer_id, email, '' AS discriminator,
           json_merge_patch('{}', json_object('previous_tier', tier_before)) AS metadata
    FROM present
    WHERE change_kind = 'changed' AND enrolled_before AND NOT enrolled_after
),

expiry_due AS (
    -- Every reminder window the member's next expiry is within on D (0 <= days left <= window).
    SELECT d.customer_id, d.email, d.next_expiry_date AS expiry_date, d.next_expiry_amount AS amount,
           w.days AS window_days
    FROM snapshots d JOIN reminder_windows w ON date_diff('day', $day, d.next_expiry_date) BETWEEN 0 AND w.days
    WHERE d.snapshot_date = $day AND d.enrolled AND d.next_expiry_amount > 0
), expiry_history AS (
    -- The members whose reminders are judged on their history: those P does not hold with D's batch
    -- (new since P, rejected on P, or whose enrolment or next expiry changed since P).
    SELECT customer_id FROM present
    WHERE change_kind = 'new' OR enrolled_before IS DISTINCT FROM enrolled_after
       OR expiry_date_before IS DISTINCT FROM expiry_date_after
       OR expiry_amount_before IS DISTINCT FROM expiry_amount_after
    UNION ALL
    SELECT customer_id FROM rejected_members($previous)
), expiry_reached_before AS (
    -- A window is reached once per expiry date: not again if an earlier snapshot (any, the baseline
    -- included) already had the same batch within it. This also covers gaps and members missing a day.
    SELECT DISTINCT e.customer_id, e.expiry_date, e.window_days
    FROM (SELECT * FROM expiry_due WHERE customer_id IN (SELECT customer_id FROM expiry_history)) e
    JOIN snapshots s ON s.customer_id = e.customer_id AND s.next_expiry_date = e.expiry_date
    WHERE s.snapshot_date < $day AND s.snapshot_date >= $day - $max_window
      AND date_diff('day', s.snapshot_date, e.expiry_date) <= e.window_days
      AND s.enrolled AND s.next_expiry_amount > 0
    UNION ALL
    -- The others had the batch on P: P says it all, the days before it are farther from the date.
    SELECT e.customer_id, e.expiry_date, e.window_days
    FROM expiry_due e
    WHERE e.customer_id NOT IN (SELECT customer_id FROM expiry_history)
      AND $previous >= $day - $max_window AND date_diff('day', $previous, e.expiry_date) <= e.window_days
), expiring AS (
    -- Several windows reached at once (after a gap, or a new batch already close): the smallest only.
    SELECT 'loyalty.points_expiring' AS code_name, customer_id, email,
           strftime(expiry_date, '%Y-%m-%d') || ':' || min(window_days) AS discriminator,
           json_object('points_at_risk', amount, 'expiry_date', expiry_date) AS metadata
    FROM expiry_due e
    WHERE NOT EXISTS (SELECT 1 FROM expiry_reached_before r
                      WHERE r.customer_id = e.customer_id AND r.expiry_date = e.expiry_date
                        AND r.window_days = e.window_days)
    GROUP BY customer_id, email, expiry_date, amount
),

ladder AS (
    SELECT name, lead(name) OVER w AS next_tier, lead(threshold) OVER w AS next_threshold
    FROM tiers WINDOW w AS (ORDER BY rank)
), approach_crossings AS (
    -- Came near next tier T on D (enrolled, 1..threshold points to go on the program's basis), having
    -- been enrolled on P but not near T (farther, or in another tier). Such a member's tier, points or
    -- enrolment changed since P: the day's deltas hold them all, with the values of both days. A member
    -- rejected on P is compared there with an older row, which is no crossing: P must hold the member
    -- (the deltas' other rows of changed members are P's: only those rejected on P are not).
    SELECT c.customer_id, c.tier_after AS current_tier, a.next_tier,
           a.next_threshold - CASE WHEN $basis = 'lifetime_points' THEN c.lifetime_after ELSE c.balance_after END
               AS to_next
    FROM continuing c
    JOIN ladder a ON a.name = c.tier_after
    LEFT JOIN ladder b ON b.name = c.tier_before
    WHERE a.next_tier IS NOT NULL
      AND a.next_threshold - CASE WHEN $basis = 'lifetime_points' THEN c.lifetime_after ELSE c.balance_after END
          BETWEEN 1 AND $approach_threshold
      AND NOT coalesce(b.next_tier = a.next_tier AND b.next_threshold - CASE WHEN $basis = 'lifetime_points'
              THEN c.lifetime_before ELSE c.balance_before END BETWEEN 1 AND $approach_threshold, false)
      AND c.customer_id NOT IN (SELECT customer_id FROM rejected_members($previous))
), near_before AS (
    -- Those members near the tier above theirs on the cool-down's snapshot days before D and the day
    -- before each (temp table approach_days; none when the cool-down holds no earlier snapshot day:
    -- $cooldown_from is after $previous then).
    SELECT s.snapshot_date, s.customer_id, l.next_tier
    FROM snapshots s JOIN ladder l ON l.name = s.tier
    WHERE s.snapshot_date BETWEEN $cooldown_from AND $previous
      AND s.snapshot_date IN (SELECT day FROM approach_days UNION ALL SELECT prev_day FROM approach_days)
      AND s.customer_id IN (SELECT customer_id FROM approach_crossings)
      AND s.enrolled AND l.next_tier IS NOT NULL
      AND l.next_threshold - CASE WHEN $basis = 'lifetime_points' THEN s.lifetime_points
                                  ELSE s.points_balance END BETWEEN 1 AND $approach_threshold
), earlier_crossings AS (
    -- The same crossing on one of those days, against its own previous snapshot day.
    SELECT n.customer_id, n.next_tier FROM approach_days a
    JOIN near_before n ON n.snapshot_date = a.day
    JOIN snapshots p ON p.snapshot_date = a.prev_day AND p.customer_id = n.customer_id AND p.enrolled
    WHERE a.day < $day AND p.snapshot_date BETWEEN $cooldown_from AND $previous
      AND NOT EXISTS (SELECT 1 FROM near_before x WHERE x.snapshot_date = a.prev_day
                        AND x.customer_id = n.customer_id AND x.next_tier = n.next_tier)
), approaching AS (
    -- Cool-down: not if the member also crossed towards the same tier on a snapshot day less than
    -- approaching_cooldown_days before D (whether or not that crossing fired).
    SELECT 'loyalty.approaching_tier_upgrade' AS code_name, c.customer_id, d.email, c.next_tier AS discriminator,
           json_object('current_tier', c.current_tier, 'next_tier', c.next_tier,
                       'points_to_next_tier', c.to_next) AS metadata
    FROM approach_crossings c
    JOIN on_day d ON d.customer_id = c.customer_id
    WHERE NOT EXISTS (SELECT 1 FROM earlier_crossings e WHERE e.customer_id = c.customer_id
                        AND e.next_tier = c.next_tier)
),

events AS (
    SELECT *, false AS held_back FROM points_from_activities
    UNION ALL SELECT *, false FROM points_from_lifetime
    UNION ALL SELECT *, false FROM tier_moves
    UNION ALL SELECT * FROM enrolments
    UNION ALL SELECT *, false FROM opt_outs
    UNION ALL SELECT *, false FROM expiring
    UNION ALL SELECT *, false FROM approaching
)
SELECT
    sha256(code_name || '|' || customer_id || '|' || strftime($day, '%Y-%m-%d') || '|' || discriminator) AS event_key,
    $day AS snapshot_date, customer_id, email, code_name, discriminator, metadata::JSON AS metadata,
    -- Backfills don't spam customers: old business dates are kept, but marked as not to be sent.
    CASE WHEN $day < $stale_before AND NOT $send_stale THEN 'suppressed_stale' ELSE 'pending' END AS status,
    held_back  -- not an event: counted by build_events, never stored
FROM events
WHERE $previous IS NOT NULL  -- the baseline implies nothing
  AND list_contains($enabled, code_name)
ORDER BY code_name, customer_id, discriminator
