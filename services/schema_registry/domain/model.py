"""The registry's values: canonical schemas, registered versions, compatibility violations."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CanonicalSchema:
    """A schema ready to store: its root message and canonical descriptor set.

    `fingerprint` identifies the schema registry-wide: equal fingerprints share a schema id.
    """

    message_name: str
    descriptor: bytes
    fingerprint: str


@dataclass(frozen=True)
class RegisteredSchema:
    """One version of a subject: which schema (id) it is, and the schema itself."""

    schema_id: int
    subject: str
    version: int
    message_name: str
    descriptor: bytes
    fingerprint: str
    created_at: float  # UTC epoch seconds


@dataclass(frozen=True)
class Violation:
    """One reason a candidate is incompatible with a registered version.

    `rule` is buf's rule id (e.g. FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED) or the registry's own
    MESSAGE_SAME_NAME; `message` starts with the direction ("backward: ..." / "forward: ...").
    """

    rule: str
    against_version: int
    message: str

    def describe(self) -> str:
        return f"{self.rule} (version {self.against_version}) {self.message}"
