"""The garbage collector's setting for a long-running crossdock process, applied once it is up.

Why: a service holds a few hundred thousand objects from its imports and its start (protobuf
descriptors, SQLAlchemy, karrio's connectors) that live as long as the process. CPython's full
(generation 2) collection walks all of them: in the mesh at 30 lifecycles/s each one paused a
service's event loop, and every request in flight there, for 50-190 ms (docs/performance.md,
round 7). `settle_heap()` moves what exists at that point into the permanent generation, which
no collection scans again (it would never be freed anyway). Reference cycles made later are
still found and freed.

The young threshold stays CPython's: raised to 20,000, young collections in carrier-adapter took
40-110 ms each in the mesh (round 7), longer pauses than the full ones this removes.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Freeze the objects alive now out of every later collection. Call once, after the
    process started (imports done, servers listening)."""
    gc.collect()  # startup garbage is freed now rather than frozen for good
    gc.freeze()
