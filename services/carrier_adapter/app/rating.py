"""GetRates: every wanted carrier account quotes at once; the quotes are stored under new rate
ids, so BookLabel books exactly what was quoted (account, service and price). Quotes for a
return label come only from accounts that can book one, so the cheapest quote is bookable.

BookLabel with `shop` quotes the same way (`quote_carriers`) and books the quote
`domain.rating.choose_quote` picks: the cheapest that meets the service level, by the rule
shipment applied to GetRates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.carrier_adapter.adapters.carriers.connectors import ConnectorRegistry
from services.carrier_adapter.adapters.reliability.clock import Clock
from services.carrier_adapter.adapters.store.quotes import save_quotes
from services.carrier_adapter.domain.connector import CarrierConnector
from services.carrier_adapter.domain.errors import UnsupportedOperation, is_retryable
from services.carrier_adapter.domain.model import RateQuote, RateRequest
from services.kit.errors import DomainError
from services.kit.ids import resource_id
from services.kit.uow import UnitOfWork, UnitsOfWork

__all__ = [
    "CarrierFailure",
    "Quotes",
    "Rates",
    "get_rates",
    "quote_carriers",
    "store_quotes",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CarrierFailure:
    """Why one carrier gave no quotes; the others' quotes are still answered."""

    carrier: str
    message: str
    retryable: bool = False


@dataclass(frozen=True)
class Rates:
    quoted: list[tuple[str, RateQuote]]  # (rate id, quote), cheapest first
    failures: list[CarrierFailure]


@dataclass(frozen=True)
class Quotes:
    """What the carriers quoted, not yet stored (no rate ids), cheapest first."""

    quotes: list[RateQuote]
    failures: list[CarrierFailure]


async def get_rates(
    units: UnitsOfWork,
    registry: ConnectorRegistry,
    clock: Clock,
    request: RateRequest,
    carriers: Sequence[str],
    quote_ttl: timedelta,
    *,
    is_return: bool = False,
) -> Rates:
    """Quotes of every account of `carriers` (every account when empty), stored, cheapest first;
    for a return label, only of accounts that can book one."""
    found = await quote_carriers(registry, request, carriers, is_return=is_return)
    quoted = [(resource_id("rte"), quote) for quote in found.quotes]
    now = clock.now()
    await units.run(store_quotes, quoted, now, now + quote_ttl)
    return Rates(quoted, found.failures)


async def quote_carriers(
    registry: ConnectorRegistry,
    request: RateRequest,
    carriers: Sequence[str] = (),
    *,
    is_return: bool = False,
) -> Quotes:
    """Quotes of every account of `carriers` (every account when empty), cheapest first, and
    why the others gave none; for a return label, only of accounts that can book one."""
    wanted = set(carriers)
    connectors = [c for c in registry if not wanted or c.carrier in wanted]
    unable = [c for c in connectors if is_return and not c.capabilities.return_label]
    connectors = [c for c in connectors if c not in unable]
    answers = await _rate_each(connectors, request)
    quotes: list[RateQuote] = []
    failures = [
        CarrierFailure(name, "no account is configured for this carrier")
        for name in sorted(wanted - {c.carrier for c in connectors + unable})
    ] + [
        CarrierFailure(name, UnsupportedOperation(name, "return labels").message)
        for name in sorted({c.carrier for c in unable})
    ]
    for connector, answer in zip(connectors, answers, strict=True):
        if isinstance(answer, BaseException):
            failures.append(_failure(connector, answer))
        else:
            quotes.extend(answer)
    quotes.sort(key=lambda q: (q.total_charge.amount, q.carrier, q.service_code))
    return Quotes(quotes, failures)


async def _rate_each(
    connectors: Sequence[CarrierConnector], request: RateRequest
) -> list[list[RateQuote] | BaseException]:
    """Each connector's quotes or its error, in order."""
    if len(connectors) == 1:
        # The usual single account, awaited in place: gather would wrap it in a task (~10 µs).
        try:
            return [await connectors[0].rate(request)]
        except Exception as error:
            return [error]
    # Concurrently: the answer takes as long as the slowest carrier, not their sum.
    return await asyncio.gather(*(c.rate(request) for c in connectors), return_exceptions=True)


def store_quotes(
    uow: UnitOfWork,
    quoted: Sequence[tuple[str, RateQuote]],
    now: datetime,
    default_expiry: datetime,
) -> None:
    save_quotes(uow.conn, quoted, now, default_expiry)


def _failure(connector: CarrierConnector, error: BaseException) -> CarrierFailure:
    if isinstance(error, DomainError):
        message = error.message
    else:
        # Our bug, not the carrier's answer: keep internals out of the response.
        log.error("rating with %s failed", connector.account_id, exc_info=error)
        message = "internal error while rating"
    return CarrierFailure(connector.carrier, message, is_retryable(error))
