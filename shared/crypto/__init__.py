"""Encryption of buyer data: the `Pii` value type, per-order envelopes (AES-256-GCM data keys
wrapped by weekly epoch keys), the epoch keys' lifecycle in Key Vault, and Key Vault access."""
