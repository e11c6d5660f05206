"""Which quote a shop-and-book books (pure): the rule shipment applied to GetRates' answer before
BookLabel chose for it, so the same quote is booked."""

from __future__ import annotations

from services.carrier_adapter.domain.model import RateQuote, ServiceLevel
from services.carrier_adapter.domain.rating import choose_quote, meets
from services.kit.values import Money


def quote(
    code: str, carrier: str, level: ServiceLevel | None, amount: str, days: int | None = None
) -> RateQuote:
    return RateQuote(carrier, carrier, code, code, level, Money.of(amount, "USD"), days)


# In GetRates order (cheapest first).
QUOTES = [
    quote("r2", "fedex", ServiceLevel.ECONOMY, "8.00", 6),
    quote("r3", "usps", ServiceLevel.EXPEDITED, "11.50", 2),
    quote("r1", "ups", ServiceLevel.STANDARD, "12.00", 4),
    quote("r4", "dhl_express", ServiceLevel.OVERNIGHT, "40.00", 1),
]


def chosen(*args: object) -> str | None:
    found = choose_quote(*args)  # type: ignore[arg-type]
    return None if found is None else found.service_code


def test_the_cheapest_quote_that_meets_the_level_wins() -> None:
    assert chosen(QUOTES, ServiceLevel.STANDARD) == "r3"  # expedited meets standard
    assert chosen(QUOTES, ServiceLevel.ECONOMY) == "r2"
    assert chosen(QUOTES, ServiceLevel.OVERNIGHT) == "r4"
    # No level (the contract's unspecified) means standard.
    assert chosen(QUOTES, None) == "r3"


def test_no_quote_meets_the_level() -> None:
    assert chosen(QUOTES[:3], ServiceLevel.OVERNIGHT) is None
    assert chosen([], ServiceLevel.STANDARD) is None
    # A service the carrier's table does not place at a level meets none.
    assert chosen([quote("x", "ups", None, "1.00")], ServiceLevel.ECONOMY) is None
    assert not meets(None, ServiceLevel.ECONOMY)


def test_carrier_preference_breaks_ties_then_the_shorter_promise_then_getrates_order() -> None:
    tied = [
        quote("a", "ups", ServiceLevel.STANDARD, "10.00", 5),
        quote("b", "fedex", ServiceLevel.STANDARD, "10.00", 5),
        quote("c", "usps", ServiceLevel.STANDARD, "10.00", 3),
    ]
    assert chosen(tied, ServiceLevel.STANDARD, ["fedex", "ups"]) == "b"
    assert chosen(tied, ServiceLevel.STANDARD) == "c"
    # No promise ranks after any promise; then the earlier in GetRates order (lower rate id).
    unknown = [
        quote("d", "ups", ServiceLevel.STANDARD, "10.00"),
        quote("e", "ups", ServiceLevel.STANDARD, "10.00", 7),
        quote("f", "ups", ServiceLevel.STANDARD, "10.00", 7),
    ]
    assert chosen(unknown, ServiceLevel.STANDARD) == "e"
