"""Scaled mode's JetStream names come from the environment, checked when read."""

from __future__ import annotations

import pytest

from tally.app.settings import Settings
from tally.kernel.errors import ConfigurationError


def test_the_event_log_streams_default_to_the_documented_names() -> None:
    settings = Settings.from_env({"TALLY_MODE": "scaled"})
    assert (settings.nats_stream, settings.nats_subjects, settings.nats_conflicts) == (
        "TALLY_EVENTS",
        "tally.events",
        "TALLY_EVENT_CONFLICTS",
    )


def test_the_event_log_streams_can_be_named_per_deployment() -> None:
    settings = Settings.from_env(
        {
            "TALLY_NATS_STREAM": "EU_EVENTS",
            "TALLY_NATS_SUBJECTS": "eu.tally.events",
            "TALLY_NATS_CONFLICTS": "EU_CONFLICTS",
        }
    )
    assert (settings.nats_stream, settings.nats_subjects, settings.nats_conflicts) == (
        "EU_EVENTS",
        "eu.tally.events",
        "EU_CONFLICTS",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TALLY_NATS_STREAM", "EVENTS.X"),
        ("TALLY_NATS_STREAM", "EVENTS*"),
        ("TALLY_NATS_SUBJECTS", "tally.>"),
        ("TALLY_NATS_SUBJECTS", "tally..events"),
        ("TALLY_NATS_SUBJECTS", "tally.events."),
        ("TALLY_NATS_CONFLICTS", "a b"),
    ],
)
def test_a_stream_name_or_subject_prefix_with_wildcards_or_stray_dots_is_refused(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})
