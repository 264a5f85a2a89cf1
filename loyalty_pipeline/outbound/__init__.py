"""Stage 4, outbound: what the day's snapshot and events become for other systems, one package per
destination: shopimind/ (LoyaltyAccount upserts and deletions, event triggers, over its API) and
reelevant/ (the "Loyalty Programme" datasource file)."""
