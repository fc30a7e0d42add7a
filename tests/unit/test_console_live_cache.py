"""The live feed's shared cache: one build per view and period, however many feeds ask."""

from __future__ import annotations

import threading
import time

from tally.entrypoints.console.overview import LiveCache


def test_fifty_feeds_asking_at_once_build_a_view_once() -> None:
    cache = LiveCache(max_age_s=5.0)
    made = []
    start = threading.Barrier(50)
    got: list[dict[str, str]] = []

    def make() -> dict[str, str]:
        made.append(1)
        time.sleep(0.05)  # a build that takes a while: the others must wait, not build too
        return {"t.provider.acme.EUR.ggr": "12.34"}

    def feed() -> None:
        start.wait()
        got.append(cache.get(("finance",), make))

    threads = [threading.Thread(target=feed) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == cache.builds == 1
    assert got == [{"t.provider.acme.EUR.ggr": "12.34"}] * 50


def test_views_are_apart_and_a_stale_one_is_built_again() -> None:
    cache = LiveCache(max_age_s=0.05)
    count = {"n": 0}

    def make() -> dict[str, str]:
        count["n"] += 1
        return {"k": str(count["n"])}

    assert cache.get(("partner", "pa"), make) == {"k": "1"}
    assert cache.get(("partner", "pb"), make) == {"k": "2"}  # another scope, another view
    assert cache.peek(("partner", "pa")) == {"k": "1"}
    time.sleep(0.06)
    assert cache.peek(("partner", "pa")) is None
    assert cache.get(("partner", "pa"), make) == {"k": "3"}
