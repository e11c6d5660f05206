"""Outbox rows are audited against the stream whose subject filters match their subject."""

from __future__ import annotations

import pytest

from localmesh.chaos.history import StreamRecord
from localmesh.chaos.streams import stream_for, subject_matches


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("crossdock.order.>", "crossdock.order.placed.v1", True),
        ("crossdock.order.>", "crossdock.order", False),
        ("crossdock.*.placed.v1", "crossdock.order.placed.v1", True),
        ("crossdock.*.placed.v1", "crossdock.order.placed.v2", False),
        ("crossdock.order.placed.v1", "crossdock.order.placed.v1", True),
        ("crossdock.order.placed", "crossdock.order.placed.v1", False),
        ("crossdock.order.placed.v1.x", "crossdock.order.placed.v1", False),
    ],
)
def test_nats_wildcards(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_a_subject_maps_to_its_stream_or_to_none() -> None:
    streams = (
        StreamRecord("ORDER", ("crossdock.order.>", "crossdock.return.>")),
        StreamRecord("BILLING", ("crossdock.billing.>",)),
    )

    assert stream_for("crossdock.return.received.v1", streams) == "ORDER"
    assert stream_for("crossdock.billing.invoice_posted.v1", streams) == "BILLING"
    assert stream_for("crossdock.shipment.created.v1", streams) == ""
