"""The sweep's picture: offered rate against completed rate, and against p99 latencies.

Left: completed lifecycles/s against the offered rate, with the y = x line a mesh that keeps up
follows; filled markers are sustained rates (no backlog grows), hollow ones are not. Right: the
p99 of REST accept and of the three hops, in ms on a log scale.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.lifecycle_stats import HOPS

__all__ = ["plot_sweep"]


def plot_sweep(report: Mapping[str, Any], target: Path | io.BytesIO) -> None:
    """Write the PNG to `target` (a path, or a buffer)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file only
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    rates: Sequence[Mapping[str, Any]] = report["rates"]
    offered = [r["offered_per_s"] for r in rates]
    completed = [r["completed_per_s"] for r in rates]
    sustained = [bool(r["sustained"]) for r in rates]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))

    top = max([*offered, *completed, 1.0]) * 1.1
    left.plot([0, top], [0, top], color="0.75", linestyle="--", label="completed = offered")
    left.plot(offered, completed, color="tab:blue", linewidth=1.5)
    for x, y, ok in zip(offered, completed, sustained, strict=True):
        left.plot(
            x,
            y,
            marker="o",
            markersize=7,
            color="tab:blue",
            markerfacecolor="tab:blue" if ok else "white",
        )
    left.plot([], [], "o", color="tab:blue", label="sustained")
    left.plot(
        [], [], "o", color="tab:blue", markerfacecolor="white", label="not sustained, or no verdict"
    )
    left.set_xlim(0, top)
    left.set_ylim(0, top)
    left.set_xlabel("offered orders/s (open loop, REST)")
    left.set_ylabel("completed lifecycles/s (steady state)")
    left.set_title("throughput")
    left.grid(alpha=0.3)
    left.legend(loc="upper left", fontsize=8)

    series = [("REST accept", [r["rest_accept_ms"]["p99"] for r in rates])]
    series += [(label, [r["hops_ms"][key]["p99"] for r in rates]) for key, label in HOPS[:3]]
    for label, values in series:
        points = [(x, y) for x, y in zip(offered, values, strict=True) if y]
        if points:
            left_x, right_y = zip(*points, strict=True)
            right.plot(left_x, right_y, marker="o", label=f"{label} p99")
    right.set_yscale("log")
    right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    right.set_xlabel("offered orders/s")
    right.set_ylabel("p99 latency, ms (log)")
    right.set_title("latency")
    right.grid(alpha=0.3, which="both")
    right.legend(loc="upper left", fontsize=8)

    meta = report.get("meta", {})
    figure.suptitle(
        f"crossdock order lifecycles, {meta.get('db', '?')}, {meta.get('cores', '?')} cores, "
        f"{meta.get('window_s', '?')} s windows ({meta.get('started', '')})",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(target, format="png", dpi=110)
    plt.close(figure)
