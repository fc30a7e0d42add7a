"""Payout rails: how a payout leaves Tally (the port is tally.payouts.rails)."""
