"""The raw carrier payload log: every request and answer exchanged with a carrier, kept for audit
and debugging, with bounded retention.

The table comes with the store; this module fixes what a record holds, how it is redacted and
truncated before it is written, and which records a retention sweep deletes. Bounded twice: by
age (errors are kept longer, they are what someone investigates) and by count per carrier
account (a chatty carrier cannot fill the disk inside the age window).
"""

from __future__ import annotations

import enum
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "PayloadDirection",
    "PayloadRecorder",
    "PayloadSink",
    "RawPayload",
    "RetentionCutoffs",
    "RetentionPolicy",
    "StoredPayloadRef",
    "redact",
]


class PayloadDirection(enum.StrEnum):
    REQUEST = "request"  # we sent it to the carrier
    RESPONSE = "response"  # the carrier answered with a success status
    ERROR = "error"  # the carrier answered with an error, or the exchange failed
    INBOUND = "inbound"  # the carrier pushed it to us (webhook)


@dataclass(frozen=True)
class RawPayload:
    carrier: str
    carrier_account_id: str
    operation: str  # rate, book_label, cancel_label, track, webhook, auth
    direction: PayloadDirection
    recorded_at: datetime
    body: str  # redacted and truncated
    url: str = ""
    # What the exchange was about: a tracking number or idempotency key, for lookups.
    reference: str = ""
    truncated: bool = False

    @property
    def is_error(self) -> bool:
        return self.direction is PayloadDirection.ERROR


# The service passes a sink that appends to the store's table (or a list in tests).
PayloadSink = Callable[[RawPayload], None]

# Values of these JSON keys / form fields are credentials even when we do not know them upfront.
_SECRET_FIELDS = re.compile(
    r'(?P<prefix>"(?:access_token|refresh_token|client_secret|password|secret_key|'
    r'paymentAuthorizationToken)"\s*:\s*")[^"]*(?P<suffix>")'
    r"|(?P<fprefix>(?:^|&)(?:client_secret|password)=)[^&]*",
    re.IGNORECASE,
)
# Every field name above contains one of these. Why: the case-insensitive field pattern scans
# the whole body at ~30 µs for a small webhook, while ruling it out with `in` on the casefolded
# text costs ~2 µs. Every character re.IGNORECASE matches to a letter of these casefolds to that
# letter, so a body the pattern would match always passes this check.
_FIELD_HINTS = ("token", "secret", "password")
_REDACTED = "***"


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Blank known credential values and token fields before a payload is stored."""
    return _redact(text, _longest_first(secrets))


def _longest_first(secrets: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so a secret containing another is blanked whole; short ones are too likely
    # to appear by chance.
    return tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    if not text:
        return text
    for secret in secrets:
        text = text.replace(secret, _REDACTED)
    folded = text.casefold()
    if not any(hint in folded for hint in _FIELD_HINTS):
        return text
    return _SECRET_FIELDS.sub(_blank, text)


def _blank(match: re.Match[str]) -> str:
    if match.group("prefix") is not None:
        return f"{match.group('prefix')}{_REDACTED}{match.group('suffix')}"
    return f"{match.group('fprefix')}{_REDACTED}"


@dataclass(frozen=True)
class StoredPayloadRef:
    """What a retention sweep needs to know about a stored record."""

    record_id: int
    carrier_account_id: str
    recorded_at: datetime
    is_error: bool


@dataclass(frozen=True)
class RetentionCutoffs:
    """Delete ordinary records recorded before `ordinary_before`, errors before `error_before`."""

    ordinary_before: datetime
    error_before: datetime


@dataclass(frozen=True)
class RetentionPolicy:
    max_age: timedelta = timedelta(days=14)
    error_max_age: timedelta = timedelta(days=90)
    max_records_per_account: int = 200_000
    max_body_chars: int = 64_000

    def __post_init__(self) -> None:
        if self.error_max_age < self.max_age:
            raise ValueError("error_max_age must be at least max_age")
        if self.max_records_per_account < 1 or self.max_body_chars < 256:
            raise ValueError("retention bounds are too small to be useful")

    def cutoffs(self, now: datetime) -> RetentionCutoffs:
        """The age bounds as two instants, for a `DELETE … WHERE recorded_at < ?` sweep."""
        return RetentionCutoffs(now - self.max_age, now - self.error_max_age)

    def fit_body(self, body: str) -> tuple[str, bool]:
        """Truncate an oversized body (label PDFs in base64) keeping its start."""
        if len(body) <= self.max_body_chars:
            return body, False
        return body[: self.max_body_chars], True

    def select_for_deletion(
        self, records: Iterable[StoredPayloadRef], now: datetime
    ) -> Sequence[int]:
        """Ids to delete: past their age bound, or beyond the newest N of their account."""
        cut = self.cutoffs(now)
        doomed: list[int] = []
        survivors: dict[str, list[StoredPayloadRef]] = defaultdict(list)
        for record in records:
            bound = cut.error_before if record.is_error else cut.ordinary_before
            if record.recorded_at < bound:
                doomed.append(record.record_id)
            else:
                survivors[record.carrier_account_id].append(record)
        for kept in survivors.values():
            if len(kept) > self.max_records_per_account:
                kept.sort(key=lambda r: (r.recorded_at, r.record_id), reverse=True)
                doomed.extend(r.record_id for r in kept[self.max_records_per_account :])
        return sorted(doomed)


class PayloadRecorder:
    """Stamps, redacts and truncates payloads for one carrier account, then hands them on."""

    def __init__(
        self,
        carrier: str,
        carrier_account_id: str,
        sink: PayloadSink,
        now: Callable[[], datetime],
        secrets: Iterable[str] = (),
        policy: RetentionPolicy | None = None,
    ) -> None:
        self.carrier = carrier
        self.carrier_account_id = carrier_account_id
        self._sink = sink
        self._now = now
        self._secrets = _longest_first(secrets)  # ordered once, not on every record
        self._policy = policy or RetentionPolicy()

    def record(
        self,
        *,
        operation: str,
        direction: PayloadDirection,
        body: str,
        url: str = "",
        reference: str = "",
    ) -> None:
        text, truncated = self._policy.fit_body(_redact(body, self._secrets))
        self._sink(
            RawPayload(
                carrier=self.carrier,
                carrier_account_id=self.carrier_account_id,
                operation=operation,
                direction=direction,
                recorded_at=self._now(),
                body=text,
                url=_redact(url, self._secrets),
                reference=reference,
                truncated=truncated,
            )
        )
