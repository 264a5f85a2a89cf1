"""ShopiMind: LoyaltyAccount records and event triggers over its API v1 (shared/reference/shopimind-api.md)."""
