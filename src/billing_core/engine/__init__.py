"""The BillingEngine: runs the seed flows against the plugins, with idempotency and a write-ahead record."""
