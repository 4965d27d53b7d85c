"""Privacy and data security: PII detectors and redaction, encryption at rest, retention, audit chain."""
