"""The provider-facing HTTP gateway: wallet callbacks in each provider's own protocol."""
