"""Regulator exports: signed bundles of transactions, accounts and audit records."""
