"""Wallet mode: the player's balance in the ledger, moved by provider callbacks."""
