"""WatchCustomers over native gRPC: order, resume without gaps, filters, heartbeats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from customers.v1 import customers_pb2, events_pb2
from tests.integration.conftest import GrpcPartner


async def take(stream: AsyncIterator[customers_pb2.CustomerEvent], count: int) -> list:
    """The next `count` change messages (heartbeats skipped), or fail after 10 s."""
    got: list[customers_pb2.CustomerEvent] = []

    async def collect() -> None:
        async for message in stream:
            if not message.heartbeat:
                got.append(message)
                if len(got) == count:
                    return

    await asyncio.wait_for(collect(), 10)
    return got


def watch(partner: GrpcPartner, **request: object) -> grpc.aio.UnaryStreamCall:
    return partner.customers.WatchCustomers(
        customers_pb2.WatchCustomersRequest(**request), metadata=partner.metadata
    )


async def test_a_live_stream_receives_changes_in_order(partner: GrpcPartner) -> None:
    call = watch(partner, after=0)  # a new partner: nothing before, everything live
    await asyncio.sleep(0.2)
    customer = await partner.active_customer()  # created, screening/verifying, active
    await partner.customers.DeactivateCustomer(
        customers_pb2.DeactivateCustomerRequest(customer_id=customer.id), metadata=partner.metadata
    )
    events = await take(call, 4)
    call.cancel()
    statuses = [e.customer.status for e in events]
    assert [e.customer.id for e in events] == [customer.id] * 4
    assert statuses[-1] == customer.Status.inactive
    assert statuses[-2] == customer.Status.active
    seqs = [e.seq for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    assert all(e.webhook_type == "customer.updated" and e.event_id for e in events)


async def test_resuming_after_a_sequence_misses_nothing_and_repeats_nothing(
    partner: GrpcPartner,
) -> None:
    first = await partner.active_customer()
    everything = watch(partner, after=0)
    seen = await take(everything, 3)
    everything.cancel()
    last = seen[-1].seq
    # Disconnected: more changes happen.
    await partner.customers.DeactivateCustomer(
        customers_pb2.DeactivateCustomerRequest(customer_id=first.id), metadata=partner.metadata
    )
    await partner.customers.ActivateCustomer(
        customers_pb2.ActivateCustomerRequest(customer_id=first.id), metadata=partner.metadata
    )
    resumed = watch(partner, after=last)
    missed = await take(resumed, 2)
    assert [e.seq for e in missed] == [last + 1, last + 2]
    assert [e.customer.status for e in missed] == [first.Status.inactive, first.Status.active]
    # ... and then live ones.
    second = await partner.active_customer()
    live = await take(resumed, 3)
    resumed.cancel()
    assert [e.customer.id for e in live] == [second.id] * 3
    assert live[0].seq > last + 2


async def test_a_customer_filter_streams_only_that_customer(partner: GrpcPartner) -> None:
    mine = await partner.active_customer()
    call = watch(partner, after=0, customer_id=mine.id)
    await partner.active_customer()  # another customer's changes
    await partner.customers.DeactivateCustomer(
        customers_pb2.DeactivateCustomerRequest(customer_id=mine.id), metadata=partner.metadata
    )
    events = await take(call, 4)
    call.cancel()
    assert {e.customer.id for e in events} == {mine.id}
    assert events[-1].customer.status == mine.Status.inactive


async def test_streams_are_per_partner_and_unknown_customers_fail_before_streaming(
    partner: GrpcPartner, other_partner: GrpcPartner
) -> None:
    theirs = await other_partner.active_customer()
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await take(watch(partner, customer_id=theirs.id), 1)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    call = watch(partner, after=0)
    mine = await partner.active_customer()
    events = await take(call, 3)
    call.cancel()
    assert {e.customer.id for e in events} == {mine.id}


@pytest.mark.parametrize("server_settings", [{"stream_heartbeat_seconds": 0.2}])
async def test_an_idle_stream_gets_heartbeats(partner: GrpcPartner) -> None:
    call = watch(partner)
    beats = [await asyncio.wait_for(call.read(), 5) for _ in range(3)]
    call.cancel()
    assert all(beat.heartbeat and not beat.HasField("seq") for beat in beats)


@pytest.mark.parametrize("server_settings", [{"stream_heartbeat_seconds": 120}])
async def test_a_stream_with_no_backlog_opens_with_a_heartbeat_at_once(
    partner: GrpcPartner,
) -> None:
    call = watch(partner)
    first = await asyncio.wait_for(call.read(), 10)  # the first tick is 120 s away
    call.cancel()
    assert first.heartbeat


@pytest.mark.parametrize("server_settings", [{"stream_heartbeat_seconds": 0.2}])
async def test_a_stream_that_receives_changes_still_hears_heartbeats_when_they_stop(
    partner: GrpcPartner,
) -> None:
    call = watch(partner, after=0)
    await partner.active_customer()
    await take(call, 3)
    beat = await asyncio.wait_for(call.read(), 5)
    call.cancel()
    assert beat.heartbeat


STORM = 3_500  # beyond grpc core's default hard limit of 3,000 calls waiting to be taken up


async def test_a_burst_of_stream_opens_is_taken_up_whole(partner: GrpcPartner) -> None:
    """Thousands of subscribers reconnecting at once (after a restart, say): none is
    cancelled by the server before our code sees it."""
    calls = [watch(partner) for _ in range(STORM)]
    try:
        firsts = await asyncio.wait_for(
            asyncio.gather(*(call.read() for call in calls), return_exceptions=True), 120
        )
    finally:
        for call in calls:
            call.cancel()
    failures = [f for f in firsts if not isinstance(f, customers_pb2.CustomerEvent)]
    assert failures == []
    assert all(first.heartbeat for first in firsts)


async def test_list_events_pages_every_change_with_its_entity(partner: GrpcPartner) -> None:
    customer = await partner.active_customer()
    stub = partner.events
    page = await stub.ListEvents(
        events_pb2.ListEventsRequest(after=0, page_size=2), metadata=partner.metadata
    )
    assert [e.seq for e in page.events] == [1, 2] and page.next_page_token
    rest = await stub.ListEvents(
        events_pb2.ListEventsRequest(page_token=page.next_page_token), metadata=partner.metadata
    )
    assert rest.events[0].seq == 3
    assert rest.events[-1].customer.id == customer.id
    assert rest.events[-1].customer.status == customer.Status.active
    only_cards = await stub.ListEvents(
        events_pb2.ListEventsRequest(types=["card.updated"]), metadata=partner.metadata
    )
    assert list(only_cards.events) == []
