"""Evolution Gaming One Wallet API (casino wallet side: Evolution's live casino calls it)."""

from tally.providers.evolution.adapter import EvolutionAdapter

__all__ = ["EvolutionAdapter"]
