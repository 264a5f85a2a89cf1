"""Reelevant: the "Loyalty Programme" datasource, one JSON Lines file per business date."""
