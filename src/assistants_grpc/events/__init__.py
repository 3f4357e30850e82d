"""Run events: the ordered per-run log in the database and the live fan-out to subscribers."""
