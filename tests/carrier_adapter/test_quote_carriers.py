"""quote_carriers: every account's quotes, cheapest first, and one failure per account that gave
none; the same whether one account is asked (awaited in place) or several (concurrently)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.app.rating import CarrierFailure, quote_carriers
from services.carrier_adapter.domain.connector import Capabilities
from services.carrier_adapter.domain.errors import CarrierRejected, CarrierUnavailable
from services.carrier_adapter.domain.model import Parcel, RateQuote, RateRequest, ServiceLevel
from services.kit.values import Address, Money, Weight, WeightUnit

PLACE = Address("Dock 1", ("1 Dock Rd",), "Atlanta", "30301", "US", region="GA")
BOX = Parcel(Weight(Decimal("2.5"), WeightUnit.KILOGRAM))
REQUEST = RateRequest(PLACE, PLACE, (BOX,))  # the fake carriers price anything the same


def down(carrier: str) -> CarrierUnavailable:
    return CarrierUnavailable(carrier, "HTTP 503", maybe_committed=False)


class FakeCarrier:
    """Answers every rate request with its quotes, or fails with its error."""

    capabilities = Capabilities()

    def __init__(self, carrier: str, *amounts: str, error: Exception | None = None) -> None:
        self.carrier = carrier
        self.account_id = carrier
        self.amounts = amounts
        self.error = error

    async def rate(self, request: RateRequest) -> list[RateQuote]:
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        return [quote(self.carrier, amount) for amount in self.amounts]


def quote(carrier: str, amount: str) -> RateQuote:
    return RateQuote(
        carrier, carrier, "GROUND", "Ground", ServiceLevel.STANDARD, Money.of(amount, "USD")
    )


def prices(quotes: list[RateQuote]) -> list[tuple[str, Decimal]]:
    return [(q.carrier, q.total_charge.amount) for q in quotes]


async def test_one_account_quotes_cheapest_first() -> None:
    registry = ConnectorRegistry([FakeCarrier("ups", "12.00", "8.50")])  # type: ignore[list-item]

    found = await quote_carriers(registry, REQUEST)

    assert prices(found.quotes) == [("ups", Decimal("8.50")), ("ups", Decimal("12.00"))]
    assert found.failures == []


@pytest.mark.parametrize(
    ("error", "retryable"),
    [(down("ups"), True), (CarrierRejected("ups", ["bad zip"]), False)],
)
async def test_one_account_failing_is_a_failure_not_an_error(
    error: CarrierUnavailable | CarrierRejected, retryable: bool
) -> None:
    registry = ConnectorRegistry([FakeCarrier("ups", error=error)])  # type: ignore[list-item]

    found = await quote_carriers(registry, REQUEST)

    assert found.quotes == []
    assert found.failures == [CarrierFailure("ups", error.message, retryable)]


async def test_one_account_with_a_bug_keeps_its_internals_out_of_the_answer() -> None:
    registry = ConnectorRegistry([FakeCarrier("ups", error=RuntimeError("boom"))])  # type: ignore[list-item]

    found = await quote_carriers(registry, REQUEST)

    assert found.failures == [CarrierFailure("ups", "internal error while rating", False)]


async def test_several_accounts_answer_together_and_fail_alone() -> None:
    registry = ConnectorRegistry(
        [
            FakeCarrier("ups", "12.00"),  # type: ignore[list-item]
            FakeCarrier("fedex", error=down("fedex")),  # type: ignore[list-item]
            FakeCarrier("usps", "7.25"),  # type: ignore[list-item]
        ]
    )

    found = await quote_carriers(registry, REQUEST)

    assert prices(found.quotes) == [("usps", Decimal("7.25")), ("ups", Decimal("12.00"))]
    assert [(f.carrier, f.retryable) for f in found.failures] == [("fedex", True)]


async def test_a_cancelled_caller_is_not_answered_with_a_failure() -> None:
    started = asyncio.Event()

    class Hangs(FakeCarrier):
        async def rate(self, request: RateRequest) -> list[RateQuote]:
            started.set()
            await asyncio.Event().wait()
            return []

    registry = ConnectorRegistry([Hangs("ups")])  # type: ignore[list-item]
    task = asyncio.ensure_future(quote_carriers(registry, REQUEST))
    await started.wait()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
