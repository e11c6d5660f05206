"""The garbage collector's settings for a long-running crossdock process, applied once it is up.

Why: a service holds a few hundred thousand objects from its imports and its start (protobuf
descriptors, SQLAlchemy, karrio's connectors) that live as long as the process. CPython's full
(generation 2) collection walks all of them: in the mesh at 30 lifecycles/s each one paused a
service's event loop, and every request in flight there, for 50-190 ms (docs/performance.md,
round 7). `settle_heap()` moves what exists at that point into the permanent generation, which
no collection scans again (it would never be freed anyway), and lets more objects be allocated
between young collections, most of which die before one runs over a steady request mix.
Reference cycles made later are still found and freed.
"""

from __future__ import annotations

import gc

# Allocations (minus deallocations) between young collections; CPython's default is 700. A
# young collection then takes ~1-2 ms instead of running ~30x as often.
YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Freeze the objects alive now out of every later collection, and raise the young
    threshold. Call once, after the process started (imports done, servers listening)."""
    gc.collect()  # startup garbage is freed now rather than frozen for good
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
