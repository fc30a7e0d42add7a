"""Hub88 Operator API (the wallet an operator implements for the Hub88 aggregator)."""

from tally.providers.hub88.adapter import Hub88Adapter

__all__ = ["Hub88Adapter"]
