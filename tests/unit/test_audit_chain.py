"""The audit chain names every kind of tampering: edit, delete, insert, reorder, truncate."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from tally.audit.chain import (
    Anchor,
    AuditEntry,
    AuditHead,
    AuditRecord,
    Finding,
    Sealer,
    verify,
)

KEY = b"k" * 32
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int = 6, sealer: Sealer | None = None) -> tuple[list[AuditRecord], AuditHead]:
    sealer = sealer or Sealer(KEY)
    head: AuditHead | None = None
    records: list[AuditRecord] = []
    for i in range(n):
        entry = AuditEntry(
            actor=f"user:u{i}",
            action="user.updated",
            target=f"user:t{i}",
            at=T0 + timedelta(minutes=i),
            source="10.0.0.1",
            before={"roles": ["operations"]},
            after={"roles": ["finance"], "n": i},
        )
        record, head = sealer.next_record(head, entry)
        records.append(record)
    assert head is not None
    return records, head


def findings(records: list[AuditRecord], head: AuditHead | None) -> list[tuple[int, Finding]]:
    return [(p.seq, p.finding) for p in verify(records, Sealer(KEY), head)]


def test_an_untouched_chain_verifies_clean():
    records, head = build()
    assert findings(records, head) == []


def test_an_empty_chain_without_a_head_verifies_clean():
    assert findings([], None) == []


def test_an_edited_record_is_named():
    records, head = build()
    records[2] = replace(records[2], entry=replace(records[2].entry, after={"roles": ["admin"]}))
    assert findings(records, head) == [(3, Finding.EDITED)]


def test_an_edited_record_with_a_recomputed_unkeyed_hash_is_still_caught():
    records, head = build()
    forged = Sealer(b"x" * 32)
    entry = replace(records[2].entry, actor="user:someone-else")
    records[2] = replace(records[2], entry=entry, hash=forged.record_hash(entry, records[1].hash))
    found = findings(records, head)
    assert (3, Finding.EDITED) in found


def test_a_deleted_record_is_named_by_its_missing_sequence_number():
    records, head = build()
    del records[2]
    problems = verify(records, Sealer(KEY), head)
    assert [(p.seq, p.finding) for p in problems] == [(4, Finding.DELETED)]
    assert "record 3 missing" in problems[0].detail


def test_a_deleted_first_record_is_caught():
    records, head = build()
    del records[0]
    assert findings(records, head) == [(2, Finding.DELETED)]


def test_a_record_inserted_in_the_middle_is_named():
    records, head = build()
    intruder_entry = AuditEntry("user:mallory", "user.created", "user:m", T0, "evil")
    forged = Sealer(b"x" * 32)
    intruder = AuditRecord(
        seq=3,
        entry=intruder_entry,
        prev_hash=records[1].hash,
        hash=forged.record_hash(intruder_entry, records[1].hash),
    )
    # Make room the way someone editing the table would: renumber what follows.
    shifted = [replace(r, seq=r.seq + 1) for r in records[2:]]
    tampered = [*records[:2], intruder, *shifted]
    shifted_head = replace(head, seq=head.seq + 1, seal=Sealer(KEY).seal_head(7, head.hash))
    assert findings(tampered, shifted_head) == [(3, Finding.INSERTED)]


def test_a_record_appended_after_the_sealed_head_is_named():
    records, head = build()
    entry = AuditEntry("user:mallory", "user.created", "user:m", T0, "evil")
    forged = Sealer(b"x" * 32)
    records.append(AuditRecord(7, entry, records[-1].hash, forged.record_hash(entry, "")))
    assert (7, Finding.INSERTED) in findings(records, head)


def test_swapped_records_are_reported_as_reordered():
    records, head = build()
    a, b = records[2], records[4]
    records[2] = replace(b, seq=3)
    records[4] = replace(a, seq=5)
    found = findings(records, head)
    assert found and all(f is Finding.REORDERED for _, f in found)
    assert {seq for seq, _ in found} >= {3, 5}


def test_records_cut_off_the_end_are_reported_as_truncated():
    records, head = build()
    assert findings(records[:-2], head) == [(6, Finding.TRUNCATED)]


def test_a_head_moved_back_to_hide_a_truncation_fails_its_seal():
    records, head = build()
    moved = replace(head, seq=4, hash=records[3].hash)
    assert findings(records[:4], moved) == [(4, Finding.EDITED)]


def test_a_chain_checked_with_another_key_fails_everywhere():
    records, head = build()
    problems = verify(records, Sealer(b"z" * 32), head)
    assert len(problems) >= len(records)


def test_timestamps_in_another_zone_hash_as_utc():
    from datetime import timezone

    local = datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    entry = AuditEntry("system", "x.done", "x", local)
    assert entry.at.tzinfo is UTC and entry.at == local


def test_a_wiped_trail_beside_a_store_that_holds_users_is_not_intact():
    # Records and head deleted: nothing left to break, but the users say there was a trail.
    problems = verify([], Sealer(KEY), None, kept="2 users")
    assert [(p.seq, p.finding) for p in problems] == [(0, Finding.TRUNCATED)]
    assert "2 users" in problems[0].detail
    assert verify([], Sealer(KEY), None, kept="") == []  # a fresh store: nothing to trail


def test_a_trail_rolled_back_to_a_saved_head_fails_against_a_later_anchor():
    records, head = build()
    anchor = Anchor(head.seq, head.hash)  # published in an export or a metrics scrape
    assert verify(records, Sealer(KEY), head, anchors=[anchor]) == []
    # The file was saved at record 4 and restored later: records and sealed head agree.
    _, saved_head = build(4)
    assert findings(records[:4], saved_head) == []
    problems = verify(records[:4], Sealer(KEY), saved_head, anchors=[anchor])
    assert [(p.seq, p.finding) for p in problems] == [(6, Finding.TRUNCATED)]
    assert "anchor" in problems[0].detail


def test_a_trail_rewritten_past_an_anchor_fails_it():
    records, _ = build()
    anchor = Anchor(records[3].seq, records[3].hash)
    other, other_head = build(6, Sealer(b"o" * 32))  # a different history of the same length
    problems = verify(other, Sealer(b"o" * 32), other_head, anchors=[anchor])
    assert [(p.seq, p.finding) for p in problems] == [(4, Finding.EDITED)]


def test_an_anchor_reads_as_seq_colon_hash_and_refuses_anything_else():
    _, head = build()
    assert Anchor.parse(f"{head.seq}:{head.hash}") == Anchor(head.seq, head.hash)
    assert str(Anchor(head.seq, head.hash)) == f"{head.seq}:{head.hash}"
    for bad in ("", "6", f"x:{head.hash}", "6:nothex", f"-1:{head.hash}"):
        with pytest.raises(ValueError):
            Anchor.parse(bad)
