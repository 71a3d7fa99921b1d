"""A stream's inbox: first in, first out, bounded, and a waiting reader wakes on a put."""

from __future__ import annotations

import asyncio

import pytest

from server.events.mailbox import Mailbox


async def test_items_come_out_in_order_and_the_bound_refuses_one_more() -> None:
    box: Mailbox[int | None] = Mailbox(2)
    box.put_nowait(1)
    box.put_nowait(None)
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(3)
    assert box.qsize() == 2
    assert await box.get() == 1
    assert box.get_nowait() is None
    assert box.empty()
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()


async def test_a_waiting_reader_wakes_on_a_put() -> None:
    box: Mailbox[str] = Mailbox(10)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not reader.done()
    box.put_nowait("change")
    assert await asyncio.wait_for(reader, 1) == "change"


async def test_a_cancelled_reader_leaves_the_box_usable() -> None:
    box: Mailbox[str] = Mailbox(10)
    reader = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    box.put_nowait("later")
    assert await asyncio.wait_for(box.get(), 1) == "later"


async def test_a_second_waiting_reader_is_refused() -> None:
    box: Mailbox[str] = Mailbox(10)
    first = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await box.get()
    box.put_nowait("one")
    assert await first == "one"
