-- Acknowledged accounts (relation `outcomes`, status sent): remember the values ShopiMind now holds, and
-- that the record carries our customer_id field (every record written since that field exists does).
MERGE INTO account_sync_state a
USING (
    SELECT s.customer_id, s.snapshot_date, s.points_balance, coalesce(s.tier, '') AS tier, s.tier_since,
           s.next_expiry_date, s.next_expiry_amount
    FROM outcomes o
    JOIN snapshots s ON s.snapshot_date = o.snapshot_date AND s.customer_id = o.key
    WHERE o.kind = 'account' AND o.status = 'sent'
) s ON a.destination = $destination AND a.customer_id = s.customer_id
WHEN MATCHED THEN UPDATE SET
    snapshot_date = s.snapshot_date, points_balance = s.points_balance, tier = s.tier, tier_since = s.tier_since,
    next_expiry_date = s.next_expiry_date, next_expiry_amount = s.next_expiry_amount, acknowledged_at = now(),
    keyed = true
WHEN NOT MATCHED THEN INSERT VALUES ($destination, s.customer_id, s.snapshot_date, s.points_balance, s.tier,
                                     s.tier_since, s.next_expiry_date, s.next_expiry_amount, now(), true)
