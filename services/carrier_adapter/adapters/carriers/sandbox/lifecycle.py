"""The sandbox's tracking lifecycle: the scans a parcel will get, planned when it is labelled.

A plan is a pure function of the parcel and a seeded RNG, so a test (or a demo) replays the same
story every time. Offsets are simulated time; the connector divides them by its time scale, so
"fast mode" compresses days of transit into seconds without changing the story.

Paths, drawn once per parcel:
- normal: label → pickup → hub scans → out for delivery → delivered (signed);
- exception: … → out for delivery → failed attempt (reason) → next day out again → delivered;
- return: … → two failed attempts → returning to sender → back through a hub → returned.
Independently a parcel may get a weather delay in transit, and (for demos of the unmapped-code
path) a scan with a code the sandbox table does not map.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

from services.carrier_adapter.domain.model import (
    ScanLocation,
)
from services.kit.values import Address

__all__ = ["LifecycleRates", "PlannedScan", "Timings", "plan_lifecycle"]

# Sorting hubs the simulated network routes through (city, region, postal code).
_HUBS = (
    ("Memphis", "TN", "38118"),
    ("Louisville", "KY", "40209"),
    ("Indianapolis", "IN", "46241"),
    ("Dallas", "TX", "75261"),
    ("Chicago", "IL", "60666"),
    ("Denver", "CO", "80249"),
)
_FAILED_ATTEMPT_REASONS = ("NA", "NA", "NA", "CL", "AD")  # weighted: nobody home is common
UNMAPPED_DEMO_CODE = "XSC"


@dataclass(frozen=True)
class Timings:
    """Simulated durations of each step (before the time scale is applied)."""

    pickup_after: timedelta = timedelta(hours=3)
    out_for_delivery_after_arrival: timedelta = timedelta(hours=5)
    deliver_after_out_for_delivery: timedelta = timedelta(hours=4)
    next_attempt_after_failure: timedelta = timedelta(hours=18)
    return_transit: timedelta = timedelta(days=2)
    weather_delay: timedelta = timedelta(days=1)
    jitter: float = 0.2  # each gap varies by ± this fraction


@dataclass(frozen=True)
class LifecycleRates:
    exception: float = 0.05  # a failed attempt, then delivered
    return_to_sender: float = 0.01
    weather_delay: float = 0.03
    unmapped_code: float = 0.0

    def __post_init__(self) -> None:
        for name in ("exception", "return_to_sender", "weather_delay", "unmapped_code"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} rate must be within [0, 1]")
        if self.exception + self.return_to_sender > 1.0:
            raise ValueError("exception and return rates together exceed 1")


@dataclass(frozen=True)
class PlannedScan:
    offset: timedelta  # simulated time after the label was created
    code: str
    description: str
    location: ScanLocation
    reason: str = ""
    signed_by: str = ""


@dataclass
class _Plan:
    timings: Timings
    rng: random.Random
    at: timedelta = timedelta(0)
    scans: list[PlannedScan] = field(default_factory=list)

    def after(self, gap: timedelta) -> None:
        spread = self.timings.jitter
        self.at += gap * self.rng.uniform(1 - spread, 1 + spread)

    def add(
        self, code: str, text: str, where: ScanLocation, reason: str = "", signer: str = ""
    ) -> None:
        self.scans.append(PlannedScan(self.at, code, text, where, reason, signer))


def plan_lifecycle(
    *,
    seed: int,
    tracking_number: str,
    ship_from: Address,
    ship_to: Address,
    transit_days: int,
    rates: LifecycleRates,
    timings: Timings,
) -> list[PlannedScan]:
    # One RNG per parcel, seeded by the carrier seed and the number: each parcel's story is
    # independent of the order parcels were booked in.
    rng = random.Random(f"{seed}:{tracking_number}")
    plan = _Plan(timings, rng)
    origin, destination = _place(ship_from), _place(ship_to)
    hubs = [
        ScanLocation(city, region, postal, "US") for city, region, postal in rng.sample(_HUBS, 2)
    ]

    plan.after(timedelta(minutes=2))
    plan.add("LBL", "Shipping label created, awaiting pickup", origin)
    plan.after(timings.pickup_after)
    plan.add("PKP", "Picked up by driver", origin)
    plan.after(timedelta(hours=2))
    plan.add("DEP", f"Departed facility in {origin.city}", origin)

    # Spread the line-haul over the promised transit days, one hub per day at most.
    line_haul = timedelta(days=transit_days) - timings.out_for_delivery_after_arrival
    stops = hubs[: max(1, min(len(hubs), transit_days))]
    for index, hub in enumerate(stops):
        plan.after(line_haul / (len(stops) + 1))
        plan.add("ARR", f"Arrived at sort facility {hub.city}", hub)
        if index == 0 and rng.random() < rates.unmapped_code:
            plan.after(timedelta(minutes=40))
            plan.add(UNMAPPED_DEMO_CODE, "Service center scan", hub)
        if index == 0 and rng.random() < rates.weather_delay:
            plan.after(timedelta(hours=1))
            plan.add("DLY", "Weather delay: severe weather in the area", hub, reason="WX")
            plan.after(timings.weather_delay)
        plan.after(timedelta(hours=3))
        plan.add("DEP", f"Departed facility in {hub.city}", hub)
    plan.after(line_haul / (len(stops) + 1))
    plan.add("ARR", f"Arrived at delivery station {destination.city}", destination)

    draw = rng.random()
    attempts = (
        2
        if draw < rates.return_to_sender
        else (1 if draw < rates.return_to_sender + rates.exception else 0)
    )
    for attempt in range(attempts):
        plan.after(
            timings.out_for_delivery_after_arrival
            if attempt == 0
            else timings.next_attempt_after_failure
        )
        plan.add("OFD", "Out for delivery", destination)
        plan.after(timings.deliver_after_out_for_delivery)
        reason = rng.choice(_FAILED_ATTEMPT_REASONS) if attempt == 0 else "NA"
        plan.add("ATT", "Delivery attempted, not delivered", destination, reason=reason)

    if draw < rates.return_to_sender:
        plan.after(timedelta(hours=20))
        plan.add("RTS", "Returning to sender after failed delivery attempts", destination)
        plan.after(timings.return_transit / 2)
        plan.add("ARR", f"Arrived at sort facility {hubs[0].city}", hubs[0])
        plan.after(timings.return_transit / 2)
        plan.add("RTD", "Returned to sender", origin, signer=_signer(ship_from))
        return plan.scans

    plan.after(
        timings.out_for_delivery_after_arrival
        if attempts == 0
        else timings.next_attempt_after_failure
    )
    plan.add("OFD", "Out for delivery", destination)
    plan.after(timings.deliver_after_out_for_delivery)
    plan.add("DLV", "Delivered, front door", destination, signer=_signer(ship_to))
    return plan.scans


def _place(address: Address) -> ScanLocation:
    return ScanLocation(address.city, address.region, address.postal_code, address.country_code)


def _signer(address: Address) -> str:
    return (address.name.split()[-1] if address.name.split() else "RECEIVER").upper()
