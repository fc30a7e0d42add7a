"""Canonical events: one versioned record of every provider action, and the event log."""
