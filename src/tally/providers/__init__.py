"""Provider integration: one adapter per provider protocol, a registry, the gateway.

The wallet the gateway hands calls to is its own context, :mod:`tally.wallet`.
"""
