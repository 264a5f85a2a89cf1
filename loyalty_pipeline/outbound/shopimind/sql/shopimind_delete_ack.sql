-- Acknowledged deletions (relation `outcomes`, kind account_delete, status sent): ShopiMind holds no
-- LoyaltyAccount for these members any more. Forgetting what it held makes a member who comes back
-- "new" to the account diff (written again), and keeps a departed member from being deleted twice.
DELETE FROM account_sync_state
WHERE destination = $destination
  AND customer_id IN (SELECT key FROM outcomes WHERE kind = 'account_delete' AND status = 'sent')
