"""The gateway: a provider's request in, the provider's answer out, nothing lost between.

Order of checks: the provider is known; the caller's address is allowed (when the
provider has an allow-list); the signature is authentic; the body parses. A request
that fails any of them is answered in the provider's own error format and kept in the
input quarantine with its raw payload and reason. What passes goes to the wallet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import structlog

from tally.events.model import EventKind
from tally.kernel.clock import Clock
from tally.kernel.limits import JSON_MAX_DEPTH, json_too_deep
from tally.providers.base import Credentials, Inbound, Outbound, ProviderAdapter, Refusal
from tally.providers.registry import Registry
from tally.providers.sessions import InvalidSession, SessionTokens
from tally.quarantine.inputs import InputQuarantine, Quarantined, Reason, Refused, payload_text
from tally.quarantine.redrive import RedriveOutcome
from tally.wallet.model import TX_ID_MAX, CallKind, WalletAnswer, WalletCall, WalletError
from tally.wallet.service import WalletService

log = structlog.get_logger("tally.gateway")

ALLOW_IPS_SECRET = "allow_ips"  # noqa: S105 - a secret's name, not a secret; a provider's optional allow-list: comma-separated addresses
# Set by the gateway on a kept callback (never taken from the request: see _KEPT_HEADERS).
AUTHENTIC_HEADER = "x-tally-authentic"
_KEPT_HEADERS = frozenset(
    {"content-type", "x-request-sign", "x-hub88-signature", "user-agent", "x-forwarded-for"}
)


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    body_max_bytes: int = 64 * 1024  # a wallet callback is small; more is refused
    credentials_ttl_s: float = 5.0  # how long opened provider secrets are reused


class CachedCredentials:
    """A provider's secrets, opened at most once per ``ttl`` (a change applies within it)."""

    def __init__(self, get: Callable[[str, str], str | None], provider: str, ttl: float) -> None:
        self._get = get
        self._provider = provider
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str | None]] = {}

    def get(self, name: str) -> str | None:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        value = self._get(self._provider, name)
        self._cache[name] = (now, value)
        return value


class Gateway:
    def __init__(
        self,
        registry: Registry,
        wallet: WalletService,
        secrets: Callable[[str, str], str | None],
        quarantine: InputQuarantine,
        clock: Clock,
        sessions: SessionTokens,
        limits: GatewayLimits | None = None,
        *,
        suspended: Callable[[str, str], bool] | None = None,
    ) -> None:
        """``secrets(provider, name)`` opens one provider secret (see ProviderSecrets.get).
        ``suspended(provider, game)``: whether risk has suspended the provider or the game
        (its ``RiskSwitches.suspended``); new play there is refused in the protocol's own
        "game disabled" terms."""
        self.suspended = suspended
        self.sessions = sessions
        self.registry = registry
        self.wallet = wallet
        self.quarantine = quarantine
        self.clock = clock
        self.limits = limits or GatewayLimits()
        self._credentials = {
            p: CachedCredentials(secrets, p, self.limits.credentials_ttl_s)
            for p in registry.providers()
        }

    def handle(self, provider: str, inbound: Inbound) -> Outbound:
        (out,) = self.handle_many([(provider, inbound)])
        return out

    def handle_many(self, requests: Sequence[tuple[str, Inbound]]) -> list[Outbound]:
        """Answers to ``(provider, request)`` pairs, the same as handling them one by one in
        order; their wallet calls share rounds (see ``WalletService.handle_many``)."""
        outs: list[Outbound] = []
        for (provider, inbound), (out, refused) in zip(
            requests, self._process(requests), strict=True
        ):
            if refused is not None:
                self._keep(provider, inbound, *refused)
            outs.append(out)
        return outs

    def redrive(self, entry: Quarantined) -> RedriveOutcome:
        """A kept callback through the gateway again, as the provider's retry would go.

        Its signature or token is not kept (secrets are redacted before the quarantine
        keeps anything), so it cannot be checked again: a callback that passed the check on
        arrival (refused later: unknown player, bad amount, ...) is trusted on that record;
        one that did not pass it cannot be re-driven, only answered by the provider's own
        retry, signed again, or dismissed."""
        headers = dict(entry.refused.headers)
        authentic = headers.pop(AUTHENTIC_HEADER, "") == "yes"
        if not authentic:
            return RedriveOutcome(
                False,
                "not_authentic: its signature or token did not pass on arrival and is not "
                "kept (secrets are redacted), so only the provider's own retry can be accepted",
            )
        inbound = Inbound(
            action=headers.pop("x-tally-action", ""),
            body=entry.refused.payload.encode(),
            received_at=self.clock.now(),
            headers=headers,
            query=json.loads(headers.pop("x-tally-query", "{}")),
            remote=headers.pop("x-tally-remote", ""),
        )
        ((out, refused),) = self._process([(entry.refused.channel, inbound)], authentic=True)
        if refused is not None:
            return RedriveOutcome(False, f"{refused[0].value}: {refused[1]}")
        return RedriveOutcome(200 <= out.status < 300, f"answered {out.status}: {out.body[:200]!r}")

    def _process(
        self, requests: Sequence[tuple[str, Inbound]], *, authentic: bool = False
    ) -> list[_Processed]:
        """Each answer, and why its request is to be kept in quarantine (if it is).
        ``authentic``: the requests passed the address and signature checks before (a
        re-drive), so those are not made again."""
        done: dict[int, _Processed] = {}
        calls: list[tuple[int, _Decoded]] = []
        for i, (provider, inbound) in enumerate(requests):
            decoded = self._decode(provider, inbound, authentic=authentic)
            if isinstance(decoded, _Decoded):
                calls.append((i, decoded))
            else:
                done[i] = decoded
        stopped = {i for i, c in calls if self._stops(requests[i][0], c.call)}
        answers = self.wallet.handle_many(
            [
                (
                    requests[i][0],
                    # A suspended game's new play only asks the balance, to answer with it.
                    replace(c.call, kind=CallKind.BALANCE, ops=()) if i in stopped else c.call,
                    payload_text(requests[i][1].body),
                )
                for i, c in calls
            ]
        )
        for (i, c), answer in zip(calls, answers, strict=True):
            if i in stopped:
                answer = _disabled(c.call, answer)
                log.info("provider_game_suspended", provider=requests[i][0], game=c.call.game)
            out = c.adapter.answer(answer, c.credentials)
            if answer.error is WalletError.UNKNOWN_PLAYER:
                done[i] = out, (Reason.UNKNOWN_PLAYER, f"no wallet for {c.call.player!r}", True)
            elif answer.error is WalletError.BAD_AMOUNT:
                done[i] = out, (Reason.OUT_OF_RANGE, answer.detail, True)
            else:
                done[i] = out, None
        return [done[i] for i in range(len(requests))]

    def _stops(self, provider: str, call: WalletCall) -> bool:
        """Whether ``call`` starts new play on a suspended game or provider. Wins and
        rollbacks settle play already accepted, and balance asks change nothing: they pass."""
        if self.suspended is None:
            return False
        starts = call.kind is CallKind.AUTHENTICATE and bool(call.game)
        starts = starts or any(op.kind is EventKind.BET for op in call.ops)
        return starts and self.suspended(provider, call.game)

    def _decode(
        self, provider: str, inbound: Inbound, *, authentic: bool = False
    ) -> _Decoded | _Processed:
        """The request's wallet call, or the answer it gets without one."""
        adapter = self.registry.get(provider)
        if adapter is None:
            body = {"error": "unknown_provider", "detail": f"no provider {provider!r}"}
            out = Outbound(404, json.dumps(body).encode())
            return out, (Reason.UNKNOWN_PROVIDER, f"no provider {provider!r}", False)
        credentials = self._credentials[provider]
        try:
            if len(inbound.body) > self.limits.body_max_bytes:
                raise Refusal(Reason.OUT_OF_RANGE, "request body too large")
            if not authentic:
                _check_address(inbound, credentials)
                adapter.verify(inbound, credentials)
                authentic = True
            raw = inbound.body
            if raw.count(b"[") + raw.count(b"{") > JSON_MAX_DEPTH and json_too_deep(
                raw.decode("utf-8", "replace")
            ):
                # Judged before any parser runs: whether json gives up on deep nesting
                # depends on the interpreter's recursion limit at that moment.
                raise Refusal(Reason.MALFORMED, "body nested too deep")
            try:
                call = adapter.parse(inbound)
            except RecursionError:
                # Nesting deep enough to exhaust a parser is a malformed body, whichever
                # adapter failed to say so; an exception here would be a bare 500 that
                # the provider retries for ever.
                raise Refusal(Reason.MALFORMED, "body nested too deep") from None
            _check_ids(call)
        except Refusal as refusal:
            log.info("provider_request_refused", provider=provider, reason=refusal.reason)
            out = adapter.refuse(inbound, refusal, credentials)
            return out, (refusal.reason, refusal.detail, authentic)
        if call.session:
            try:
                call = self._in_session(provider, call)
            except InvalidSession as exc:
                # A live session of this player asked about another currency is a currency
                # error: a token error may make the provider end the player's session.
                error = (
                    WalletError.WRONG_CURRENCY
                    if isinstance(exc, _OtherCurrency)
                    else WalletError.INVALID_SESSION
                )
                answer = WalletAnswer(call, call.currency, 0, error=error, detail=str(exc))
                # An expired or foreign session is an answer, not a defective input.
                return adapter.answer(answer, credentials), None
        return _Decoded(adapter, credentials, call)

    def _in_session(self, provider: str, call: WalletCall) -> WalletCall:
        """The call with the player and currency its session token names (checked)."""
        session = self.sessions.check(call.session, provider, self.clock.now())
        if call.player and call.player != session.player:
            raise InvalidSession("session token belongs to another player")
        if call.currency and call.currency != session.currency:
            raise _OtherCurrency(
                f"session token is for {session.currency}, the request for {call.currency}"
            )
        return replace(call, player=session.player, currency=session.currency)

    def _keep(
        self, provider: str, inbound: Inbound, reason: Reason, detail: str, authentic: bool
    ) -> None:
        self.quarantine.put(
            Refused(
                source="callback",
                channel=provider,
                reason=reason,
                detail=f"{inbound.action}: {detail}",
                payload=payload_text(inbound.body),
                received_at=inbound.received_at,
                headers={k: v for k, v in inbound.headers.items() if k in _KEPT_HEADERS}
                | {
                    "x-tally-action": inbound.action,
                    "x-tally-remote": inbound.remote,
                    "x-tally-query": json.dumps(dict(inbound.query), sort_keys=True),
                    # Whether the signature or token held: the quarantine keeps neither.
                    AUTHENTIC_HEADER: "yes" if authentic else "no",
                },
            )
        )


# An answer, and why its request is kept (reason, detail, whether it was authentic), if it is.
_Processed = tuple[Outbound, tuple[Reason, str, bool] | None]


class _OtherCurrency(InvalidSession):
    """The session is the player's and alive, but for another currency than the call's."""


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A request that passed its checks, as the wallet call it makes."""

    adapter: ProviderAdapter
    credentials: Credentials
    call: WalletCall


def _disabled(call: WalletCall, balance: WalletAnswer) -> WalletAnswer:
    """The answer to new play on a suspended game: the player's balance as it stands and
    the protocol's "game disabled" (unless the balance ask failed on its own account)."""
    if balance.error is not None:
        return replace(balance, call=call)
    return replace(
        balance,
        call=call,
        outcomes=(),
        error=WalletError.GAME_DISABLED,
        detail=f"game {call.game or '(any)'} is suspended by risk",
    )


def _check_ids(call: WalletCall) -> None:
    """Refuse a transaction id the wallet cannot key (see ``TX_ID_MAX``) as the malformed
    input it is, before the wallet: answered as a bad request and kept in quarantine,
    rather than as a failure the provider would retry."""
    for op in call.ops:
        for tx in (op.tx_id, op.ref_tx, op.settles):
            if len(tx) > TX_ID_MAX:
                raise Refusal(
                    Reason.MALFORMED, f"transaction id {tx[:40]!r}... over {TX_ID_MAX} characters"
                )


def _check_address(inbound: Inbound, credentials: Credentials) -> None:
    allowed = credentials.get(ALLOW_IPS_SECRET)
    if not allowed:
        return
    if inbound.remote not in {a.strip() for a in allowed.split(",")}:
        raise Refusal(Reason.FORBIDDEN, f"address {inbound.remote} is not allowed")
