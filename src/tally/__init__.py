"""Tally: a real-time settlement back-office."""

__version__ = "0.1.0"
