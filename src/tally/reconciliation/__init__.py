"""Reconciliation: providers' own reports matched against what Tally recorded."""
