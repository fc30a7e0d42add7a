"""Provider integration: one adapter per provider protocol, a registry, the wallet, the gateway."""
