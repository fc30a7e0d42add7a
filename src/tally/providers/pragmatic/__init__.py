"""Pragmatic Play Seamless Wallet API (casino operator side)."""

from tally.providers.pragmatic.adapter import PragmaticAdapter

__all__ = ["PragmaticAdapter"]
