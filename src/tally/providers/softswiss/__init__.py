"""SoftSwiss Game Aggregator wallet protocol (GCP v2, casino side)."""

from tally.providers.softswiss.adapter import SoftSwissAdapter

__all__ = ["SoftSwissAdapter"]
