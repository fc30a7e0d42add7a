"""The canonical event's JSON Schema (draft 2020-12), beside the codec it describes.

Published at docs/reference/event.schema.json (``tally events schema`` prints it); a test
checks that the published file is this one and that the codec and the schema agree on
what is valid, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import json
from typing import Any

from tally.events.model import (
    FIRST_YEAR,
    LAST_YEAR,
    SCHEMA_VERSION,
    Channel,
    EventKind,
    Source,
)
from tally.kernel.currency import SCALES

SCHEMA_ID = "https://tally.example/schemas/event.schema.json"
# An ISO 8601 instant that carries its offset ("Z" or +hh:mm), as the codec requires, in
# the years the codec accepts: FIRST_YEAR to LAST_YEAR (a test checks both ends).
_YEAR = r"(19[7-9]\d|[2-8]\d{3})"
_INSTANT = "^" + _YEAR + r"-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$"
_AMOUNT = r"^-?(0|[1-9]\d*)(\.\d+)?$"


def _text(description: str, *, required: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": description}
    if required:
        out["minLength"] = 1
    return out


def event_schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Tally canonical event",
        "description": (
            "One provider action (bet, win, rollback, jackpot win, bonus win, round end, "
            "adjustment) as every adapter translates it. The idempotency key is "
            "provider:provider_tx_id:kind (feed:operator:provider:provider_tx_id:kind for "
            "an operator's partner feed, so a feed never takes a provider's own key); the "
            "same key with the same content is a duplicate, with other content a conflict. "
            "Amounts are decimal strings in the currency's unit with at most its number of "
            "decimals; never numbers."
        ),
        "type": "object",
        "additionalProperties": False,
        "required": [
            "schema_version",
            "provider",
            "provider_tx_id",
            "kind",
            "operator",
            "player",
            "game_type",
            "amount",
            "currency",
            "occurred_at",
            "recorded_at",
        ],
        "properties": {
            "schema_version": {"const": SCHEMA_VERSION},
            "provider": _text("the game provider's id in Tally"),
            "provider_tx_id": _text("the provider's own transaction id"),
            "kind": {"enum": [k.value for k in EventKind]},
            "round_id": _text("the provider's round id", required=False),
            "operator": _text("the operator that owns the player"),
            "player": _text("the player's pseudonymous id"),
            "game": _text("the provider's game id", required=False),
            "game_type": _text("the game's type, as contracts name rates (slots, live, ...)"),
            "amount": {
                "type": "string",
                "pattern": _AMOUNT,
                "description": (
                    "decimal string in the currency's unit; negative only for adjustments; "
                    "no more decimals than the currency has"
                ),
            },
            "currency": {"enum": sorted(SCALES)},
            "occurred_at": {
                "type": "string",
                "pattern": _INSTANT,
                "description": (
                    "when it happened, on the provider's clock, with its offset, "
                    f"in the years {FIRST_YEAR} to {LAST_YEAR}"
                ),
            },
            "recorded_at": {
                "type": "string",
                "pattern": _INSTANT,
                "description": "when Tally recorded it (UTC)",
            },
            "channel": {"enum": [c.value for c in Channel]},
            "region": _text("the player's region", required=False),
            "agent": _text("the partner-tree store the player belongs to", required=False),
            "ref": _text(
                "for a rollback: the idempotency key of the event it voids (required then); "
                "a feed's rollback names its original as provider:provider_tx_id:kind and "
                "is read among that feed's own events",
                required=False,
            ),
            "raw": _text("the payload as received", required=False),
            "source": {
                "enum": [s.value for s in Source],
                "description": (
                    "who reported it, set by Tally at the door it came in by (a sender "
                    "cannot choose it): provider (its callbacks and reports; the meaning "
                    "when absent, as in events logged before this field) or feed (an "
                    "operator's partner feed)"
                ),
            },
        },
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": "rollback"}}},
                "then": {"properties": {"ref": {"minLength": 1}}, "required": ["ref"]},
            },
            {
                "if": {"properties": {"kind": {"not": {"const": "adjustment"}}}},
                "then": {"properties": {"amount": {"pattern": r"^(0|[1-9]\d*)(\.\d+)?$"}}},
            },
        ],
    }


def schema_text() -> str:
    return json.dumps(event_schema(), indent=2, sort_keys=True) + "\n"
