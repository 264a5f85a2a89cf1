"""Stage 4, outbound: what the day's snapshot and events become for other systems, one package per
destination: shopimind/ (LoyaltyAccount upserts and deletions, event triggers, over its API) and
reelevant/ (the "Loyalty Programme" datasource file), on core/, the delivery machinery (ledger,
chunks of typed rows, bounded concurrency, outcomes by exception type) that a destination sending
over HTTP builds on."""
