"""The provider adapter port: parse, verify, translate and answer in the provider's own format.

An adapter is pure: it turns a provider's HTTP request into a :class:`WalletCall` (what
the provider asks the wallet to do, in Tally's terms and minor units) and turns the
wallet's :class:`WalletAnswer` back into the provider's response body, status and error
codes. It never touches a store; the gateway and the wallet do that.

Refusals (a bad signature, a malformed body, an amount with more precision than the
currency has) are raised as :class:`Refusal` with a quarantine reason; the adapter then
renders them with :meth:`ProviderAdapter.refuse` in the provider's own error format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from datetime import datetime
from typing import Protocol

from tally.kernel.values import value
from tally.quarantine.inputs import Reason
from tally.wallet.model import WalletAnswer, WalletCall


def _no_strings() -> Mapping[str, str]:
    return {}


@value
class Inbound:
    """A provider's HTTP request as the gateway received it."""

    action: str  # the path under /providers/{provider}/, e.g. "play" or "bet.html"
    body: bytes
    received_at: datetime
    headers: Mapping[str, str] = field(default_factory=_no_strings)  # names lower-cased
    query: Mapping[str, str] = field(default_factory=_no_strings)
    remote: str = ""
    method: str = "POST"


@value
class Outbound:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=_no_strings)


class Refusal(Exception):
    """The request cannot be taken: kept in quarantine with ``reason`` and answered.

    ``code`` is the adapter's own name for the error (rendered by ``refuse``).
    """

    def __init__(self, reason: Reason, detail: str, code: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.code = code or reason.value


class Credentials(Protocol):
    """A provider's secrets, opened only when an adapter asks for one by name."""

    def get(self, name: str) -> str | None: ...


class ProviderAdapter(Protocol):
    name: str  # the provider's id in Tally and in the gateway's path
    protocol: str  # which public protocol and version this adapter follows
    secret_names: tuple[str, ...]  # the credentials it needs (see docs/guides/providers.md)

    def verify(self, inbound: Inbound, credentials: Credentials) -> None:
        """Raise :class:`Refusal` (BAD_SIGNATURE, STALE) unless the request is authentic."""
        ...

    def parse(self, inbound: Inbound) -> WalletCall:
        """Raise :class:`Refusal` (MALFORMED, OUT_OF_RANGE) for anything not understood."""
        ...

    def answer(self, answer: WalletAnswer, credentials: Credentials) -> Outbound:
        """The provider's response for the wallet's answer (success or business error)."""
        ...

    def refuse(self, inbound: Inbound, refusal: Refusal, credentials: Credentials) -> Outbound:
        """The provider's response for a request that was refused before the wallet."""
        ...
