"""PII-free telemetry: one record per invocation, log redaction, and the failure record and
poisoning rule for queue messages."""
