"""Privacy requests: access, correction, deletion, restriction and Amazon's deletion
requests, with their written, PII-free confirmations."""
