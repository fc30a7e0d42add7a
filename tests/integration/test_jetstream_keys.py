"""The JetStream log's key index: first writer wins beyond the server's duplicate window.

These use a one-second duplicate window so that "after the window" is a short sleep.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import nats
import pytest

from tally.adapters.nats.events import (
    JetStreamEventLog,
    StreamNames,
    claim_subject,
    key_subject,
    operator_token,
)
from tally.events.ports import Appended
from tests.conftest import NATS_URL, stream_names
from tests.contract.test_event_log_contract import bet

SHORT_WINDOW_S = 1.0
PAST_THE_WINDOW_S = 1.3


@pytest.fixture
def names() -> Iterator[StreamNames]:
    chosen: StreamNames = stream_names()
    yield chosen
    cleaner = JetStreamEventLog(NATS_URL, chosen)
    cleaner.drop()
    cleaner.close()


@pytest.fixture
def log(names: StreamNames) -> Iterator[JetStreamEventLog]:
    opened = JetStreamEventLog(NATS_URL, names, duplicate_window_s=SHORT_WINDOW_S)
    yield opened
    opened.close()


def test_a_redelivery_after_the_duplicate_window_is_still_a_duplicate(
    log: JetStreamEventLog,
) -> None:
    log.append([bet("1"), bet("2")])
    time.sleep(PAST_THE_WINDOW_S)
    results = log.append([bet("2"), bet("3"), bet("1")])
    assert [(r.outcome, r.position) for r in results] == [
        (Appended.DUPLICATE, 2),
        (Appended.ACCEPTED, 3),
        (Appended.DUPLICATE, 1),
    ]
    assert log.head() == 3


def test_other_content_after_the_duplicate_window_is_a_conflict_naming_the_field(
    log: JetStreamEventLog,
) -> None:
    log.append([bet("1")])
    time.sleep(PAST_THE_WINDOW_S)
    [amount, operator] = log.append([bet("1", amount=5), bet("1", operator="op2")])
    assert (amount.outcome, amount.differs_in) == (Appended.CONFLICT, "amount")
    assert (operator.outcome, operator.differs_in) == (Appended.CONFLICT, "operator")
    assert log.head() == 1
    assert [(k, d) for k, d, _ in log.conflicts()] == [
        ("acme:1:bet", "amount"),
        ("acme:1:bet", "operator"),
    ]


def test_a_claim_whose_event_never_landed_is_completed_by_the_retry(
    log: JetStreamEventLog, names: StreamNames
) -> None:
    event = bet("9")

    async def claim_only() -> None:
        # What a writer that crashed between its two publishes leaves behind.
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().publish(
                claim_subject(names, event.key),
                key_subject(names, event).encode(),
                stream=names.key_index,
            )
        finally:
            await nc.close()

    asyncio.run(claim_only())
    assert log.head() == 0
    [result] = log.append([event])
    assert (result.outcome, result.position) == (Appended.ACCEPTED, 1)
    [again] = log.append([bet("9", operator="op2")])
    assert (again.outcome, again.differs_in) == (Appended.CONFLICT, "operator")


@pytest.mark.parametrize("operator", ["a.b", "op.*", "op.>", "op 1", "tally.events.>", ""])
def test_an_operator_id_is_one_subject_token_without_wildcards(operator: str) -> None:
    token = operator_token(operator)
    assert token
    assert not set(token) & set(".*> \t")
    assert operator_token(operator) != operator_token(operator + "_")


def test_ids_that_clean_to_the_same_characters_stay_distinct_partitions() -> None:
    assert operator_token("a.b") != operator_token("a_b")
    assert operator_token("a.b") != operator_token("a*b")
