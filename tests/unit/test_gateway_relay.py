"""The relay's frames between gateway fronts and the core (ADR 0017): what goes in comes
out, however the stream is cut, and nothing else than a RelayError comes of bad bytes."""

from __future__ import annotations

import contextlib
import struct
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tally.entrypoints.gateway.relay import (
    FRAME_MAX_BYTES,
    RelayError,
    pack_answer,
    pack_call,
    split_frames,
    unpack_answer,
    unpack_call,
)
from tally.providers.base import Inbound, Outbound

_text = st.text(max_size=40)
_strings = st.dictionaries(_text, _text, max_size=5)
_inbounds = st.builds(
    Inbound,
    action=_text,
    body=st.binary(max_size=2_000),
    received_at=st.datetimes(
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))])
    ),
    headers=_strings,
    query=_strings,
    remote=_text,
    method=st.sampled_from(["POST", "GET"]),
)


def _frames(data: bytes) -> list[bytes]:
    return split_frames(bytearray(data))


@given(st.integers(0, 2**64 - 1), _text, _inbounds)
def test_a_call_comes_out_as_it_went_in(request_id: int, provider: str, inbound: Inbound) -> None:
    (frame,) = _frames(pack_call(request_id, provider, inbound))
    assert unpack_call(frame) == (request_id, provider, inbound)


@given(
    st.integers(0, 2**64 - 1),
    st.builds(
        Outbound,
        status=st.integers(100, 599),
        body=st.binary(max_size=2_000),
        content_type=_text,
        headers=_strings,
    ),
)
def test_an_answer_comes_out_as_it_went_in(request_id: int, out: Outbound) -> None:
    (frame,) = _frames(pack_answer(request_id, out))
    assert unpack_answer(frame) == (request_id, out)


def test_a_failed_callback_comes_out_as_an_error_that_says_why() -> None:
    (frame,) = _frames(pack_answer(7, RuntimeError("the gateway failed: a defect")))
    request_id, out = unpack_answer(frame)
    assert request_id == 7
    assert isinstance(out, RuntimeError) and str(out) == "the gateway failed: a defect"


@given(
    st.lists(st.tuples(_text, _inbounds), min_size=1, max_size=6),
    st.lists(st.integers(1, 300), max_size=30),
)
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(
    calls: list[tuple[str, Inbound]], cuts: list[int]
) -> None:
    stream = b"".join(pack_call(i, p, inbound) for i, (p, inbound) in enumerate(calls))
    buffer = bytearray()
    got = []
    at = 0
    for size in [*cuts, len(stream)]:
        buffer += stream[at : at + size]
        at += size
        got += [unpack_call(frame) for frame in split_frames(buffer)]
    assert got == [(i, p, inbound) for i, (p, inbound) in enumerate(calls)]
    assert buffer == bytearray()


@given(st.binary(max_size=200))
def test_bad_bytes_are_refused_as_a_relay_error_only(junk: bytes) -> None:
    with contextlib.suppress(RelayError):
        unpack_call(junk)
    with contextlib.suppress(RelayError):
        unpack_answer(junk)


def test_a_frame_longer_than_the_limit_is_refused_before_it_is_read() -> None:
    with pytest.raises(RelayError, match="more than"):
        split_frames(bytearray(struct.pack(">I", FRAME_MAX_BYTES + 1)))


def test_a_header_of_the_wrong_shape_is_refused() -> None:
    inbound = Inbound("play", b"{}", datetime(2026, 1, 1, tzinfo=UTC))
    (frame,) = _frames(pack_call(1, "softswiss", inbound))
    with pytest.raises(RelayError, match="not an answer"):
        unpack_answer(frame)
    (frame,) = _frames(pack_answer(1, Outbound(200, b"{}")))
    with pytest.raises(RelayError, match="not a call"):
        unpack_call(frame)
