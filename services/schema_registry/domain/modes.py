"""Compatibility modes: which registered versions a candidate is compared with, and how.

Direction semantics (the registry runs `buf breaking NEW --against OLD` for each direction):

- BACKWARD: consumers on the candidate can read what the old version wrote, i.e. the candidate
  is a non-breaking evolution of the old version: `buf breaking candidate --against old`.
- FORWARD: consumers still on the old version can read what the candidate writes, i.e. going
  back from the candidate to the old version would be non-breaking:
  `buf breaking old --against candidate`.
- FULL: both.

Non-transitive modes compare with the latest version only; *_TRANSITIVE modes with every
registered version. NONE compares with nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from services.schema_registry.domain.errors import InvalidCompatibilityLevel


class CompatibilityMode(enum.StrEnum):
    """Confluent's compatibility levels, spelled as Confluent spells them."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


# Confluent's default, and the issue's: consumers upgrade first, producers follow.
DEFAULT_MODE = CompatibilityMode.BACKWARD


class Direction(enum.StrEnum):
    """Which way a comparison runs (see the module docstring)."""

    BACKWARD = "backward"
    FORWARD = "forward"


_DIRECTIONS: dict[CompatibilityMode, tuple[Direction, ...]] = {
    CompatibilityMode.BACKWARD: (Direction.BACKWARD,),
    CompatibilityMode.BACKWARD_TRANSITIVE: (Direction.BACKWARD,),
    CompatibilityMode.FORWARD: (Direction.FORWARD,),
    CompatibilityMode.FORWARD_TRANSITIVE: (Direction.FORWARD,),
    CompatibilityMode.FULL: (Direction.BACKWARD, Direction.FORWARD),
    CompatibilityMode.FULL_TRANSITIVE: (Direction.BACKWARD, Direction.FORWARD),
    CompatibilityMode.NONE: (),
}

_TRANSITIVE = frozenset(
    {
        CompatibilityMode.BACKWARD_TRANSITIVE,
        CompatibilityMode.FORWARD_TRANSITIVE,
        CompatibilityMode.FULL_TRANSITIVE,
    }
)


@dataclass(frozen=True)
class Comparison:
    """Compare the candidate with registered `version`, in each of `directions`."""

    version: int
    directions: tuple[Direction, ...]


def parse_mode(value: str) -> CompatibilityMode:
    """A mode from its Confluent name (case-insensitive); 42203 for anything else."""
    try:
        return CompatibilityMode(value.strip().upper())
    except ValueError:
        allowed = ", ".join(mode.value for mode in CompatibilityMode)
        raise InvalidCompatibilityLevel(
            f"invalid compatibility level {value!r}: use one of {allowed}"
        ) from None


def directions_of(mode: CompatibilityMode) -> tuple[Direction, ...]:
    """The directions a mode checks (empty for NONE)."""
    return _DIRECTIONS[mode]


def is_transitive(mode: CompatibilityMode) -> bool:
    return mode in _TRANSITIVE


def comparisons_for(mode: CompatibilityMode, versions: Sequence[int]) -> list[Comparison]:
    """What registering under `mode` compares with, given the subject's versions.

    Newest first, so the most relevant reasons are reported first.
    """
    directions = directions_of(mode)
    if not directions or not versions:
        return []
    newest_first = sorted(versions, reverse=True)
    chosen = newest_first if is_transitive(mode) else newest_first[:1]
    return [Comparison(version, directions) for version in chosen]


def comparison_with(mode: CompatibilityMode, version: int) -> list[Comparison]:
    """A check against one named version: the mode's directions, transitive or not."""
    directions = directions_of(mode)
    return [Comparison(version, directions)] if directions else []
