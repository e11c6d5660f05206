"""The chaos checker: a recorded history of a run, and the properties it must satisfy.

`history` is the record (JSON round-trip, saved next to a run's report), `checker.check` judges
it with no I/O, and `gather` records one from a running local mesh through its public surfaces.
"""

from localmesh.chaos.checker import Report, Violation, check
from localmesh.chaos.history import History

__all__ = ["History", "Report", "Violation", "check"]
