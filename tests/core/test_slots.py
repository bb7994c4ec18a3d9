"""`Slots`, the worker's handler slots: a waiter claims every free slot when it runs (a
batch's releases go to one reader, not one slot each to many), waiters are served in
turn, nobody overtakes them, and a waiter cancelled after its wake passes it on."""

from __future__ import annotations

import asyncio

from homeport.core.runtime import Slots


async def test_a_woken_waiter_claims_every_slot_released_meanwhile() -> None:
    slots = Slots(4)
    assert await slots.acquire_up_to(10) == 4
    first = asyncio.create_task(slots.acquire_up_to(16))
    second = asyncio.create_task(slots.acquire_up_to(16))
    await asyncio.sleep(0)
    assert slots.locked() and slots.take(1) == 0
    for _ in range(4):  # a batch's handlers return back to back
        slots.release()
    assert await first == 4  # all four, not one
    await asyncio.sleep(0)
    assert not second.done()
    slots.release(2)
    assert await second == 2


async def test_waiters_are_served_in_turn_and_nobody_overtakes_them() -> None:
    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def want(name: str) -> None:
        await slots.acquire()
        order.append(name)

    waiters = [asyncio.create_task(want(n)) for n in "abc"]
    await asyncio.sleep(0)
    slots.release()
    assert slots.take(5) == 0  # "a" was woken: the free slot is its
    for _ in range(3):
        await asyncio.sleep(0)
        slots.release()
    await asyncio.gather(*waiters)
    assert order == ["a", "b", "c"]


async def test_a_waiter_cancelled_after_its_wake_passes_the_slot_on() -> None:
    slots = Slots(1)
    await slots.acquire()
    first = asyncio.create_task(slots.acquire())
    second = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # wakes `first`...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
    slots.release()
    assert slots.take(3) == 1  # nothing was lost or counted twice


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    slots = Slots(1)
    await slots.acquire()
    gone = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    slots.release()
    assert not slots.locked()
    assert slots.take(2) == 1


async def test_a_waiter_cancelled_before_it_runs_is_dropped_once() -> None:
    """Cancelled, then a release before the cancelled waiter resumes: the release skips
    it, and its own clean-up does not fail on the queue it already left."""
    slots = Slots(1)
    await slots.acquire()
    gone = asyncio.create_task(slots.acquire())
    other = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    gone.cancel()
    slots.release()  # runs before `gone` sees its cancellation
    await asyncio.wait_for(other, 1)
    await asyncio.gather(gone, return_exceptions=True)
    assert gone.cancelled()
    slots.release()
    assert slots.take(2) == 1
