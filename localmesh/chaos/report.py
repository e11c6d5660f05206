"""A chaos run's report: JSON for machines, a short summary for people, a plot for both.

The plot shows orders completed per 5 s over the run, with each fault's window shaded and named,
so a dip can be read against the fault that caused it and its recovery.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localmesh.chaos.checker import Report
from localmesh.chaos.nemesis import FaultRecord
from localmesh.chaos.workload import WorkloadLog

BIN_SECONDS = 5.0


@dataclass
class RunReport:
    seed: int
    duration_seconds: float
    shape: dict[str, Any]  # replicas, NATS nodes, database
    workload: WorkloadLog
    faults: list[FaultRecord]
    verdict: Report
    # Measured after faults: relay leader failovers and consumer catch-ups, seconds each.
    recoveries: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not any(r.note.startswith("not injected") for r in self.faults)

    def _by_kind(self) -> dict[str, int]:
        return _count(record.kind for record in self.faults)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seed": self.seed,
            "duration_seconds": self.duration_seconds,
            "shape": self.shape,
            "workload": self.workload.summary(),
            "faults": [record.to_json() for record in self.faults],
            "faults_by_kind": _count(record.kind for record in self.faults),
            "recoveries": {k: [round(v, 2) for v in vs] for k, vs in self.recoveries.items()},
            "checker": json.loads(self.verdict.to_json()),
            "notes": self.notes,
        }

    def summary(self) -> str:
        work = self.workload.summary()
        lines = [
            f"chaos run, seed {self.seed}, {self.duration_seconds:.0f} s, "
            + ", ".join(f"{k} {v}" for k, v in self.shape.items()),
            f"workload: {work['orders_accepted']} orders accepted "
            f"({work['orders_abandoned']} abandoned by the partner), final "
            + ", ".join(f"{k} {v}" for k, v in sorted(work["orders_final"].items()))
            + f"; {work['cancels_accepted']} cancels, {work['returns_created']} returns",
            "faults: " + ", ".join(f"{k} x{n}" for k, n in sorted(self._by_kind().items())),
        ]
        t0 = self.workload.started
        for record in self.faults:
            back = record.recovery_seconds
            recovery = f", back in {back:.1f} s" if back else ""
            note = f" ({record.note})" if record.note else ""
            lines.append(
                f"  t+{record.started - t0:6.1f} s  {record.kind:<18} {record.target:<18}"
                f" held {max(0.0, record.healed - record.started):.1f} s{recovery}{note}"
            )
        for name, values in sorted(self.recoveries.items()):
            if values:
                lines.append(
                    f"recovery {name}: median {sorted(values)[len(values) // 2]:.1f} s, "
                    f"max {max(values):.1f} s over {len(values)}"
                )
        lines.append(self.verdict.summary())
        lines.extend(f"note: {note}" for note in self.notes)
        lines.append("RESULT: " + ("zero violations" if self.ok else "VIOLATIONS (see above)"))
        return "\n".join(lines)

    def write(self, out_dir: Path) -> dict[str, Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": out_dir / "chaos-report.json",
            "summary": out_dir / "chaos-report.txt",
            "plot": out_dir / "chaos-completed.png",
        }
        paths["json"].write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        paths["summary"].write_text(self.summary() + "\n")
        self.plot(paths["plot"])
        return paths

    def plot(self, path: Path) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        completions = self.workload.completions()
        end = max([self.duration_seconds, *completions, 1.0])
        bins = [i * BIN_SECONDS for i in range(int(end // BIN_SECONDS) + 2)]
        figure, axes = plt.subplots(figsize=(11, 4))
        counts, edges, _ = axes.hist(completions, bins=bins, color="#3b6ea8")
        del counts, edges
        axes.set_xlabel("seconds since the workload started")
        axes.set_ylabel(f"orders completed per {BIN_SECONDS:.0f} s")
        t0 = self.workload.started
        colors = ["#e07b39", "#c94f4f", "#8e6bbf", "#4f9e6b", "#b59a2e", "#5a8fb8", "#a05a8f"]
        kinds = sorted({record.kind for record in self.faults})
        for record in self.faults:
            color = colors[kinds.index(record.kind) % len(colors)]
            start = record.started - t0
            stop = max(record.healed, record.started + 1.0) - t0
            axes.axvspan(start, stop + record.recovery_seconds, color=color, alpha=0.25)
            axes.text(
                start,
                axes.get_ylim()[1] * 0.95,
                record.kind,
                rotation=90,
                fontsize=7,
                va="top",
                color=color,
            )
        axes.set_title(
            f"chaos run seed {self.seed}: completed orders with fault windows "
            f"({'zero violations' if self.ok else 'violations'})"
        )
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)


def _count(items: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts
