"""The aggregator's side of the SoftSwiss protocol: signed requests, for the simulator
and the benchmarks (and for a person trying the gateway by hand)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass

from tally.providers.softswiss.adapter import SIGN_HEADER


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    body: bytes
    headers: dict[str, str]


class SoftSwissClient:
    def __init__(self, auth_token: str) -> None:
        self._token = auth_token.encode()

    def _signed(self, action: str, payload: dict[str, object]) -> Request:
        body = json.dumps(payload, separators=(",", ":")).encode()
        sign = hmac.new(self._token, body, hashlib.sha256).hexdigest()
        return Request(action, body, {SIGN_HEADER: sign, "content-type": "application/json"})

    def play(
        self,
        user: str,
        currency: str,
        game: str,
        game_id: str,
        actions: Sequence[tuple[str, str, int]],
        *,
        finished: bool = False,
    ) -> Request:
        """``actions``: (bet | win | jackpot, action id, amount in subunits), in order."""
        items: list[dict[str, object]] = []
        for kind, action_id, amount in actions:
            item: dict[str, object] = {
                "action": "win" if kind == "jackpot" else kind,
                "amount": amount,
                "action_id": action_id,
            }
            if kind == "jackpot":
                item["jackpot_win"] = True
            items.append(item)
        payload: dict[str, object] = {
            "user_id": user,
            "currency": currency,
            "game": game,
            "game_id": game_id,
            "finished": finished,
        }
        if items:
            payload["actions"] = items
        return self._signed("play", payload)

    def rollback(
        self, user: str, currency: str, game: str, game_id: str, action_id: str, original: str
    ) -> Request:
        return self._signed(
            "rollback",
            {
                "user_id": user,
                "currency": currency,
                "game": game,
                "game_id": game_id,
                "finished": True,
                "actions": [
                    {"action": "rollback", "action_id": action_id, "original_action_id": original}
                ],
            },
        )

    def freespins(self, user: str, currency: str, issue_id: str, total: int) -> Request:
        return self._signed(
            "freespins",
            {
                "user_id": user,
                "currency": currency,
                "issue_id": issue_id,
                "status": "played",
                "total_amount": total,
            },
        )
