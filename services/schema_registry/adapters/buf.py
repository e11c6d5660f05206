"""The compatibility rules engine: buf's breaking rules run on the stored descriptor sets.

A serialized FileDescriptorSet is a valid buf binary image, so each comparison writes two
`.binpb` files and runs `buf breaking NEW.binpb --against OLD.binpb --error-format json` with an
inline config. Verdicts therefore agree with `buf breaking` by construction; the registry only
decides which pairs to compare and in which direction (domain.modes).

Rule set: WIRE_JSON. Events travel as binary Protobuf on NATS *and* are rendered as JSON to
partner webhooks, so a change must keep both encodings readable. WIRE alone would allow renaming
a field or an enum value, or turning a string into bytes: wire-safe, but it changes the JSON
keys, enum strings and value encodings partners parse. FILE/PACKAGE are stricter than consumers
need (they forbid moving a message between files, renaming a file or deleting a message nothing
references) and would block harmless refactors; `buf breaking` in CI (buf.yaml, FILE) keeps
guarding those.

Before comparing, a schema is pruned to its event message with `buf build --type` (so a subject
is not versioned when an unrelated event in the same file changes), and the comparison skips
files that only define options (see domain.descriptors.payload_files).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from services.schema_registry.domain.descriptors import (
    canonical_bytes,
    fingerprint,
    parse_descriptor_set,
    payload_files,
    validate,
)
from services.schema_registry.domain.errors import InvalidSchema
from services.schema_registry.domain.model import CanonicalSchema, RegisteredSchema, Violation
from services.schema_registry.domain.modes import Direction

RULE_SET = "WIRE_JSON"
BUF_PATH_ENV = "CROSSDOCK_SCHEMA_REGISTRY_BUF_PATH"
# The registry's own rule: buf matches messages by name, so a subject whose root message was
# renamed would be compared with nothing at all.
MESSAGE_SAME_NAME = "MESSAGE_SAME_NAME"
_BREAKING_EXIT = 100  # buf's exit code for "breaking changes found"

K = TypeVar("K")
V = TypeVar("V")


class BufError(RuntimeError):
    """buf failed for a reason other than a verdict (missing binary, crash, bad input)."""


@dataclass(frozen=True)
class BufFinding:
    """One line of `buf breaking --error-format json`."""

    rule: str
    path: str
    message: str


def find_buf(explicit: str | None = None) -> str:
    """The buf binary: `explicit`, $CROSSDOCK_SCHEMA_REGISTRY_BUF_PATH, the venv's, then PATH."""
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise BufError(f"buf not found at {explicit!r}")
        return explicit
    candidates = [os.environ.get(BUF_PATH_ENV), str(Path(sys.executable).parent / "buf")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which("buf")
    if on_path:
        return on_path
    raise BufError(f"buf not found: install buf-bin or set ${BUF_PATH_ENV}")


def breaking_config(ignore: Iterable[str] = ()) -> str:
    """The inline buf config of every comparison."""
    breaking: dict[str, object] = {"use": [RULE_SET]}
    ignored = sorted(set(ignore))
    if ignored:
        breaking["ignore"] = ignored
    return json.dumps({"version": "v2", "breaking": breaking}, separators=(",", ":"))


class BufRunner:
    """Runs the buf CLI on descriptor sets in a private temporary directory."""

    def __init__(self, binary: str | None = None, *, timeout_seconds: float = 60.0) -> None:
        self.binary = find_buf(binary)
        self._timeout_seconds = timeout_seconds

    def _run(self, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        # cwd and cache inside the temp dir: no buf.yaml of the caller's tree is picked up, and a
        # read-only root filesystem (Kubernetes) is fine.
        env = dict(os.environ, BUF_CACHE_DIR=str(workdir / "cache"))
        try:
            return subprocess.run(
                [self.binary, *args],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=self._timeout_seconds,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BufError(f"buf {args[0]} failed to run: {error}") from error

    def prune(self, descriptor_set: bytes, message_name: str) -> bytes:
        """The descriptor set cut down to `message_name` and what it needs (`buf build --type`)."""
        with tempfile.TemporaryDirectory(prefix="crossdock-buf-") as tmp:
            workdir = Path(tmp)
            (workdir / "in.binpb").write_bytes(descriptor_set)
            result = self._run(
                workdir,
                "build",
                "in.binpb",
                "--type",
                message_name,
                "--exclude-source-info",
                "--as-file-descriptor-set",
                "-o",
                "out.binpb",
            )
            if result.returncode != 0:
                raise InvalidSchema(f"buf cannot build the descriptor set: {result.stderr.strip()}")
            return (workdir / "out.binpb").read_bytes()

    def breaking(self, new: bytes, old: bytes, *, ignore: Iterable[str] = ()) -> list[BufFinding]:
        """buf's findings for `new` as an evolution of `old` (empty when compatible)."""
        with tempfile.TemporaryDirectory(prefix="crossdock-buf-") as tmp:
            workdir = Path(tmp)
            (workdir / "new.binpb").write_bytes(new)
            (workdir / "old.binpb").write_bytes(old)
            result = self._run(
                workdir,
                "breaking",
                "new.binpb",
                "--against",
                "old.binpb",
                "--error-format",
                "json",
                "--config",
                breaking_config(ignore),
            )
        if result.returncode == 0:
            return []
        if result.returncode != _BREAKING_EXIT:
            raise BufError(f"buf breaking exited {result.returncode}: {result.stderr.strip()}")
        findings = []
        for line in result.stdout.splitlines():
            if line.strip():
                item = json.loads(line)
                findings.append(BufFinding(item["type"], item.get("path", ""), item["message"]))
        return findings


class _Lru(Generic[K, V]):
    """A small thread-safe LRU map (the checker runs on worker threads)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class CompatibilityChecker:
    """Canonicalizes candidates and compares them with registered versions.

    Both steps are pure functions of their inputs, so results are cached: every service
    registers its event schemas at start, mostly unchanged.
    """

    def __init__(self, buf: BufRunner, *, cache_size: int = 512) -> None:
        self.buf = buf
        self._canonical: _Lru[tuple[str, str], CanonicalSchema] = _Lru(cache_size)
        self._findings: _Lru[tuple[str, str, Direction], tuple[BufFinding, ...]] = _Lru(
            cache_size * 4
        )

    def canonicalize(self, raw: bytes, message_name: str) -> CanonicalSchema:
        """Validate, prune to the message, canonicalize and fingerprint; 42201 when invalid."""
        key = (hashlib.sha256(raw).hexdigest(), message_name)
        cached = self._canonical.get(key)
        if cached is not None:
            return cached
        validate(parse_descriptor_set(raw), message_name)
        pruned = parse_descriptor_set(self.buf.prune(raw, message_name))
        canonical = canonical_bytes(pruned)
        schema = CanonicalSchema(message_name, canonical, fingerprint(message_name, canonical))
        self._canonical.put(key, schema)
        return schema

    def compare(
        self,
        candidate: CanonicalSchema,
        against: RegisteredSchema,
        directions: Sequence[Direction],
    ) -> list[Violation]:
        """Violations of `candidate` against one registered version, in each direction."""
        if not directions:
            return []
        if candidate.message_name != against.message_name:
            return [
                Violation(
                    MESSAGE_SAME_NAME,
                    against.version,
                    f"the subject's message is {against.message_name!r} but the candidate's is "
                    f"{candidate.message_name!r}; a new event type needs a new subject",
                )
            ]
        violations: list[Violation] = []
        for direction in directions:
            for finding in self._findings_for(candidate, against, direction):
                where = f"{finding.path}: " if finding.path else ""
                violations.append(
                    Violation(
                        finding.rule, against.version, f"{direction}: {where}{finding.message}"
                    )
                )
        return violations

    def _findings_for(
        self, candidate: CanonicalSchema, against: RegisteredSchema, direction: Direction
    ) -> tuple[BufFinding, ...]:
        key = (candidate.fingerprint, against.fingerprint, direction)
        cached = self._findings.get(key)
        if cached is not None:
            return cached
        if direction is Direction.BACKWARD:
            new, old = candidate.descriptor, against.descriptor
        else:
            new, old = against.descriptor, candidate.descriptor
        new_set, old_set = parse_descriptor_set(new), parse_descriptor_set(old)
        payload = payload_files(new_set, candidate.message_name) | payload_files(
            old_set, against.message_name
        )
        every_file = {f.name for f in new_set.file} | {f.name for f in old_set.file}
        findings = tuple(self.buf.breaking(new, old, ignore=every_file - payload))
        self._findings.put(key, findings)
        return findings
