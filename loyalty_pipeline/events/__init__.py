"""Marketing events derived from the day's deltas: the catalogue (metaData schemas) and the derivation."""
