"""One router per resource: events, sessions, stats, health, metrics, streams."""
