"""What the seed (shared/seeds/000, ShopiMind's loyalty use case) sends, as written there."""

# Step 1: the LoyaltyAccount custom-data definition.
SEED_DEFINITION = {
    "name": "LoyaltyAccount",
    "description": "Current state of the loyalty program for a contact",
    "unique_keys": ["contact_id"],
    "fields": [
        {"name": "contact_id", "label": "Contact", "type": "number", "required": True},
        {"name": "points_balance", "label": "Points balance", "type": "number", "required": True},
        {"name": "tier", "label": "Tier", "type": "text", "required": True},
        {"name": "tier_since", "label": "Tier since", "type": "date", "required": False},
        {"name": "next_expiry_date", "label": "Next expiry date", "type": "date", "required": False},
        {"name": "next_expiry_amount", "label": "Points at risk", "type": "number", "required": False},
    ],
    "relationships": [{"sourceField": "contact_id", "targetSchemaType": "system", "targetSchema": "contacts",
                       "targetField": "id_contact"}],
}
