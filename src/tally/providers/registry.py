"""Which adapter speaks for which provider.

A provider id in Tally (the gateway path /providers/{id}/...) maps to an adapter; one
protocol may serve several providers (an aggregator's studios), each with its own
credentials. Adding a protocol is one package under ``tally.providers`` and one line
in :data:`PROTOCOLS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module

from tally.providers.base import ProviderAdapter

# protocol name -> "module:factory"; imported only when used.
PROTOCOLS: dict[str, str] = {
    "softswiss": "tally.providers.softswiss:SoftSwissAdapter",
    "pragmatic": "tally.providers.pragmatic:PragmaticAdapter",
    "hub88": "tally.providers.hub88:Hub88Adapter",
    "evolution": "tally.providers.evolution:EvolutionAdapter",
}


def load_protocol(protocol: str) -> Callable[[str], ProviderAdapter]:
    try:
        module, _, attr = PROTOCOLS[protocol].partition(":")
    except KeyError:
        raise KeyError(f"no adapter speaks {protocol!r}; known: {sorted(PROTOCOLS)}") from None
    factory: Callable[[str], ProviderAdapter] = getattr(import_module(module), attr)
    return factory


class Registry:
    def __init__(self) -> None:
        self._adapters: dict[str, ProviderAdapter] = {}

    def register(self, provider: str, protocol: str) -> ProviderAdapter:
        adapter = load_protocol(protocol)(provider)
        self._adapters[provider] = adapter
        return adapter

    def get(self, provider: str) -> ProviderAdapter | None:
        return self._adapters.get(provider)

    def providers(self) -> list[str]:
        return sorted(self._adapters)

    @classmethod
    def each_protocol_as_itself(cls, protocols: Iterable[str] | None = None) -> Registry:
        """One provider per protocol, named after it: the demo's and the tests' set-up."""
        registry = cls()
        for protocol in protocols or PROTOCOLS:
            registry.register(protocol, protocol)
        return registry
