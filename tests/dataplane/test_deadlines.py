"""The coarse timeout wheel: expiry after the deadline, never for discarded items."""

from __future__ import annotations

import asyncio

import uvloop

from shadowlab.dataplane.deadlines import Deadlines


def test_items_expire_after_their_deadline_unless_discarded() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        expired: list[tuple[str, float]] = []
        start = loop.time()
        wheel: Deadlines[str] = Deadlines(lambda item: expired.append((item, loop.time())))
        wheel.add("short", 0.05)
        key = wheel.add("discarded", 0.05)
        wheel.add("long", 0.15)
        wheel.discard("discarded", key)
        assert len(wheel) == 2
        await asyncio.sleep(0.3)
        assert [item for item, _ in expired] == ["short", "long"]
        for item, when in expired:
            deadline = 0.05 if item == "short" else 0.15
            assert deadline <= when - start < deadline + 0.1
        assert len(wheel) == 0
        # Idle, then used again: the timer restarts.
        wheel.add("again", 0.01)
        await asyncio.sleep(0.1)
        assert expired[-1][0] == "again"
        wheel.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())
