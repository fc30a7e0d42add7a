"""The embedded ledger decides a batch while the one before it commits (ADR 0015): when
one cannot be written, every batch decided on top of it must be decided again. What both
stores share is in ``tests/contract/test_ledger_pipeline_contract.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tally.adapters.sqlite import ledger as sqlite_ledger
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.ledger.model import ResultCode
from tests.conftest import START
from tests.support.pipeline import HOUSE, WALLET, codes, move, posted

R = ResultCode


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteLedgerStore]:
    s = SqliteLedgerStore(tmp_path / "ledger.sqlite")
    s.create_accounts([WALLET, *HOUSE], START)
    try:
        yield s
    finally:
        s.close()


def test_a_failed_commit_has_the_batches_decided_on_it_decided_again(
    store: SqliteLedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = store.decide([[move("fund", "h0", "w", 100)]], START)
    second = store.decide([[move("bet", "w", "h3", 60)]], START)
    write = sqlite_ledger.write
    failing = [first.writes]  # type: ignore[attr-defined]

    def write_failing_once(conn: Any, writes: Any) -> None:
        if failing and writes is failing[0]:
            failing.clear()
            raise OSError("disk I/O error")
        write(conn, writes)

    monkeypatch.setattr(sqlite_ledger, "write", write_failing_once)
    with pytest.raises(OSError):
        store.commit(first)
    # Decided again without the funding that never landed: the wallet cannot pay.
    assert codes(store.commit(second)) == [[R.EXCEEDS_CREDITS]]
    assert store.get_transfer("fund") is None
    assert posted(store, "w") == (0, 0)
    # The writer goes on; the next batches are decided on what the file holds.
    assert codes(store.commit(store.decide([[move("fund", "h0", "w", 100)]], START))) == [[R.OK]]
    assert codes(store.commit(store.decide([[move("bet", "w", "h3", 60)]], START))) == [[R.OK]]
    assert posted(store, "w") == (60, 100)
