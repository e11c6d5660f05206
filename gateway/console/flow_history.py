"""The overview's "last hour": a small ring of ListFlows samples kept in this gateway process.

There is no store behind it: the overview records what it reads from the tower, one sample per
`every_seconds` slot (a later read in the same slot replaces it, so the newest bar is always
the newest reading), so the trend covers the time someone had the overview open in
this process, and another replica or a restart starts empty. The page says so.

Per flow, the trend is one thin bar per sample along the hour: the oldest item's age against
the flow's SLA (the SLA at mid-height, twice the SLA or more at the top), in the warning colour
when the flow had items past the SLA then.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

TREND_WIDTH = 180.0  # SVG user units
TREND_HEIGHT = 24.0


@dataclass(frozen=True)
class FlowSample:
    oldest_seconds: float
    sla_seconds: float
    breaches: int


@dataclass(frozen=True)
class Sample:
    at: float
    flows: dict[str, FlowSample]


@dataclass(frozen=True)
class TrendBar:
    x: float
    height: float
    past_sla: bool


@dataclass(frozen=True)
class Trend:
    bars: tuple[TrendBar, ...]
    bar_width: float
    sla_y: float  # where the SLA line is drawn (from the top)


class FlowHistory:
    """The last `window_seconds` of flow samples, one per `every_seconds` slot."""

    def __init__(self, window_seconds: float = 3600.0, every_seconds: float = 30.0) -> None:
        self.window_seconds, self.every_seconds = window_seconds, every_seconds
        self._samples: deque[Sample] = deque(maxlen=int(window_seconds // every_seconds) + 1)

    def record(self, at: float, flows: Iterable[tuple[str, FlowSample]]) -> None:
        sample = Sample(at, dict(flows))
        if self._samples and self._slot(self._samples[-1].at) == self._slot(at):
            self._samples[-1] = sample
        else:
            self._samples.append(sample)
        self._prune(at)

    def _slot(self, at: float) -> int:
        return int(at // self.every_seconds)

    def _prune(self, now: float) -> None:
        while self._samples and self._samples[0].at <= now - self.window_seconds:
            self._samples.popleft()

    def samples(self, now: float) -> list[Sample]:
        self._prune(now)
        return list(self._samples)

    def trend(self, flow: str, now: float) -> Trend:
        """The flow's bars over the window ending at `now`, oldest sample on the left."""
        bar_width = max(TREND_WIDTH * self.every_seconds / self.window_seconds, 1.5)
        start = now - self.window_seconds
        bars = []
        for sample in self.samples(now):
            found = sample.flows.get(flow)
            if found is None:
                continue
            ratio = min(found.oldest_seconds / found.sla_seconds, 2.0) if found.sla_seconds else 0
            x = (sample.at - start) / self.window_seconds * (TREND_WIDTH - bar_width)
            bars.append(
                TrendBar(
                    x=round(x, 2),
                    height=round(ratio / 2.0 * TREND_HEIGHT, 2),
                    past_sla=found.breaches > 0,
                )
            )
        return Trend(tuple(bars), round(bar_width, 2), TREND_HEIGHT / 2.0)
