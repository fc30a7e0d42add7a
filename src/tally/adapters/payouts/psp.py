"""The PSP rail: payouts through a payment service provider's HTTP API (ADR 0022).

Each payout is sent under its idempotency key (so a retry is the same payout, never a
second payment): alone as ``POST /payouts``, or with up to ``psp_batch_max`` others in one
``POST /payouts/batch``, each answered as alone. What an answer means:

- 2xx: taken. SUBMITTED (``pending``), or the final state if the PSP already has one
  (``paid`` CONFIRMED, ``failed`` REJECTED: a replay of a finished payout).
- A definite refusal (400, 402, 404, 422 with a reason): REJECTED, nothing was paid.
- ``idempotency_key_reused`` (the key names another payout at the PSP), 401/403 (our
  credentials), 408, 409, 425, 429: UNKNOWN; nothing here proves the payout was not paid
  or will not be, and a person or a later ``status`` must say.
- 5xx, a timeout, a broken connection: UNKNOWN, never REJECTED: the request may have
  taken effect. ``status`` asks ``GET /payouts?idempotency_key=K``; a PSP that has no
  payout under the key answers UNKNOWN with reason ``not_found``, and a resubmission
  with the same key is then safe (it is the same payout if the first one arrives late).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson

from tally.kernel.limits import RailLimits
from tally.payouts.rails import PayoutInstruction, RailAnswer, RailOutcome

_STATES = {
    "pending": RailOutcome.SUBMITTED,
    "paid": RailOutcome.CONFIRMED,
    "failed": RailOutcome.REJECTED,
}
_REJECTING = frozenset({400, 402, 404, 410, 422})
_CONFLICT_CODES = frozenset({"idempotency_key_reused"})
_ANSWER_MAX_BYTES = 64 * 1024


def _error_of(body: Any) -> tuple[str, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    code, message = error.get("code", ""), error.get("message", "")
    return (code if isinstance(code, str) else ""), (message if isinstance(message, str) else "")


def _json(answer: httpx.Response) -> Any:
    try:
        return orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return None


def _answer_of_payout(payout_id: str, payout: Any) -> RailAnswer:
    if not isinstance(payout, dict):
        return RailAnswer(payout_id, RailOutcome.UNKNOWN, reason="the PSP answered no payout")
    outcome = _STATES.get(str(payout.get("status", "")))
    reference = str(payout.get("id", ""))
    if outcome is None:
        return RailAnswer(
            payout_id,
            RailOutcome.UNKNOWN,
            reference,
            f"the PSP answered an unknown state {payout.get('status')!r}",
        )
    reason = (
        str(payout.get("failure_code", "") or "failed") if outcome is RailOutcome.REJECTED else ""
    )
    return RailAnswer(payout_id, outcome, reference, reason)


def meaning(payout_id: str, status: int, body: Any) -> RailAnswer:
    """What one payout's HTTP status and JSON body mean (the table in the module's doc)."""
    if 200 <= status < 300:
        return _answer_of_payout(payout_id, body)
    code, message = _error_of(body)
    words = f"{status} {code}: {message}".strip(": ")
    if status in _REJECTING and code not in _CONFLICT_CODES:
        return RailAnswer(payout_id, RailOutcome.REJECTED, reason=words)
    return RailAnswer(payout_id, RailOutcome.UNKNOWN, reason=words)


def answer_of(payout_id: str, answer: httpx.Response) -> RailAnswer:
    """What one ``POST /payouts`` answer means."""
    if len(answer.content) > _ANSWER_MAX_BYTES:
        return RailAnswer(
            payout_id, RailOutcome.UNKNOWN, reason=f"oversized answer ({answer.status_code})"
        )
    body = _json(answer)
    if body is None and 200 <= answer.status_code < 300:
        return RailAnswer(
            payout_id, RailOutcome.UNKNOWN, reason=f"unreadable {answer.status_code} answer"
        )
    return meaning(payout_id, answer.status_code, body)


class PspRail:
    """The :class:`~tally.payouts.rails.Rail` over a PSP's HTTP API (the fake PSP's,
    :mod:`tally.simulation.psp`, speaks it). ``destination`` of a payout is the
    instruction's ``account`` (the PSP's payee id)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "psp",
        currencies: Collection[str] = ("EUR",),
        api_key: str | None = None,
        limits: RailLimits | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._name = name
        self._currencies = frozenset(currencies)
        self._limits = limits or RailLimits()
        timeout = httpx.Timeout(
            self._limits.psp_read_timeout_s, connect=self._limits.psp_connect_timeout_s
        )
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        pool = httpx.Limits(
            max_connections=self._limits.psp_concurrency,
            max_keepalive_connections=self._limits.psp_concurrency,
        )
        self._client = httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers, limits=pool, transport=transport
        )

    @property
    def name(self) -> str:
        return self._name

    def supports(self, currency: str) -> bool:
        return currency in self._currencies

    def close(self) -> None:
        self._client.close()

    @staticmethod
    def _item(instruction: PayoutInstruction) -> dict[str, Any]:
        return {
            "amount": instruction.amount_minor,
            "currency": instruction.currency,
            "destination": instruction.account,
            "reference": instruction.reference,
            "metadata": {"payout_id": instruction.payout_id, "run_id": instruction.run_id},
        }

    def _body(self, instruction: PayoutInstruction) -> bytes:
        return orjson.dumps(self._item(instruction), option=orjson.OPT_SORT_KEYS)

    def submit_one(self, instruction: PayoutInstruction) -> RailAnswer:
        """One ``POST /payouts`` under the payout's idempotency key."""
        refused = self._refusal(instruction)
        if refused is not None:
            return refused
        key = instruction.idempotency_key
        try:
            answer = self._client.post(
                "/payouts",
                content=self._body(instruction),
                headers={"idempotency-key": key, "content-type": "application/json"},
            )
        except httpx.TimeoutException as exc:
            return RailAnswer(
                instruction.payout_id, RailOutcome.UNKNOWN, reason=f"timeout: {type(exc).__name__}"
            )
        except httpx.HTTPError as exc:
            return RailAnswer(
                instruction.payout_id,
                RailOutcome.UNKNOWN,
                reason=f"no answer: {type(exc).__name__}",
            )
        return answer_of(instruction.payout_id, answer)

    def _refusal(self, instruction: PayoutInstruction) -> RailAnswer | None:
        key = instruction.idempotency_key
        if not key or len(key) > self._limits.psp_key_max_length:
            return RailAnswer(
                instruction.payout_id,
                RailOutcome.REJECTED,
                reason=f"idempotency key must be 1-{self._limits.psp_key_max_length} characters",
            )
        if not self.supports(instruction.currency):
            return RailAnswer(
                instruction.payout_id,
                RailOutcome.REJECTED,
                reason=f"{self._name} does not pay in {instruction.currency}",
            )
        return None

    def submit_batch(self, instructions: Sequence[PayoutInstruction]) -> list[RailAnswer]:
        """One ``POST /payouts/batch``: each payout under its own idempotency key, each
        answered as a single request would be. No answer at all is UNKNOWN for every one."""
        items = []
        for instruction in instructions:
            item = self._item(instruction)
            item["idempotency_key"] = instruction.idempotency_key
            items.append(item)
        body = orjson.dumps({"payouts": items})
        try:
            answer = self._client.post(
                "/payouts/batch", content=body, headers={"content-type": "application/json"}
            )
        except httpx.TimeoutException as exc:
            return [
                RailAnswer(
                    i.payout_id, RailOutcome.UNKNOWN, reason=f"timeout: {type(exc).__name__}"
                )
                for i in instructions
            ]
        except httpx.HTTPError as exc:
            return [
                RailAnswer(
                    i.payout_id, RailOutcome.UNKNOWN, reason=f"no answer: {type(exc).__name__}"
                )
                for i in instructions
            ]
        if answer.status_code != 200:
            return [answer_of(i.payout_id, answer) for i in instructions]
        found = _json(answer)
        results = found.get("results") if isinstance(found, dict) else None
        if not isinstance(results, list) or len(results) != len(instructions):
            return [
                RailAnswer(i.payout_id, RailOutcome.UNKNOWN, reason="unreadable batch answer")
                for i in instructions
            ]
        return [
            meaning(i.payout_id, int(r.get("status", 0)), r.get("body"))
            if isinstance(r, dict)
            else RailAnswer(i.payout_id, RailOutcome.UNKNOWN, reason="unreadable batch answer")
            for i, r in zip(instructions, results, strict=True)
        ]

    def submit(self, instructions: Sequence[PayoutInstruction]) -> Sequence[RailAnswer]:
        """One answer per instruction, in order. Several go in batch requests of up to
        ``psp_batch_max``, up to ``psp_concurrency`` requests in flight at once."""
        answers: list[RailAnswer | None] = [self._refusal(i) for i in instructions]
        todo = [n for n, answer in enumerate(answers) if answer is None]
        size = self._limits.psp_batch_max
        chunks = [todo[at : at + size] for at in range(0, len(todo), size)]

        def send(chunk: list[int]) -> list[RailAnswer]:
            if len(chunk) == 1:
                return [self.submit_one(instructions[chunk[0]])]
            return self.submit_batch([instructions[n] for n in chunk])

        if len(chunks) <= 1:
            results = [send(chunk) for chunk in chunks]
        else:
            workers = min(self._limits.psp_concurrency, len(chunks))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="psp-submit") as pool:
                results = list(pool.map(send, chunks))
        for chunk, got in zip(chunks, results, strict=True):
            for n, answer in zip(chunk, got, strict=True):
                answers[n] = answer
        assert all(answer is not None for answer in answers)
        return [answer for answer in answers if answer is not None]

    def status(self, instruction: PayoutInstruction) -> RailAnswer:
        payout_id = instruction.payout_id
        try:
            answer = self._client.get(
                "/payouts", params={"idempotency_key": instruction.idempotency_key}
            )
        except httpx.HTTPError as exc:
            return RailAnswer(
                payout_id, RailOutcome.UNKNOWN, reason=f"no answer: {type(exc).__name__}"
            )
        if answer.status_code != 200 or len(answer.content) > _ANSWER_MAX_BYTES:
            code, message = _error_of(_json(answer))
            return RailAnswer(
                payout_id,
                RailOutcome.UNKNOWN,
                reason=f"{answer.status_code} {code}: {message}".strip(": "),
            )
        body = _json(answer)
        found = body.get("data") if isinstance(body, dict) else None
        if not isinstance(found, list):
            return RailAnswer(payout_id, RailOutcome.UNKNOWN, reason="unreadable status answer")
        if not found:
            return RailAnswer(
                payout_id,
                RailOutcome.UNKNOWN,
                reason="not_found: the PSP has no payout under this key; resubmitting with "
                "the same key is safe",
            )
        return _answer_of_payout(payout_id, found[0])
