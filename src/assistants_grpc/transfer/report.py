"""The outcome of an import: counts per type and the problems, each where it was read (and the
notes of what was left out on purpose, which are not problems)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

__all__ = ["OUTCOMES", "UNREADABLE", "Problem", "Summary"]

OUTCOMES: Final = ("imported", "unchanged", "replaced", "refused", "skipped")
# Shown in the summary only when some object had it.
_SHOWN_IF_ANY: Final = frozenset({"skipped"})
# The row of the summary for what could not even be told apart (not JSON, no `object`).
UNREADABLE: Final = "(unreadable)"


@dataclass(frozen=True, slots=True)
class Problem:
    """Why an object (or the rest of a file) was not imported. `line` is None for a whole
    file; `field` is empty when no single field is to blame."""

    path: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass
class Summary:
    """Counts per type and outcome; problems go to `on_problem` as they are found (a dump
    with a million bad lines must not pile them up in memory)."""

    on_problem: Callable[[Problem], None]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: int = 0
    stopped: str | None = None  # why the import stopped before the end, if it did

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        row = self.counts.setdefault(kind, dict.fromkeys(OUTCOMES, 0))
        row[outcome] += n

    def refuse(self, kind: str, problem: Problem) -> None:
        self.count(kind, "refused")
        self.report(problem)

    def report(self, problem: Problem) -> None:
        self.problems += 1
        self.on_problem(problem)

    def skip(self, kind: str, note: Problem) -> None:
        """An object left out on purpose: counted and told, but not a problem."""
        self.count(kind, "skipped")
        self.on_problem(note)

    @property
    def ok(self) -> bool:
        return self.problems == 0 and self.stopped is None

    def total(self, outcome: str) -> int:
        return sum(row[outcome] for row in self.counts.values())

    def table(self, kinds: list[str]) -> str:
        """The summary as aligned columns: one row per type seen (in `kinds` order)."""
        names = [k for k in kinds if k in self.counts] + [k for k in self.counts if k not in kinds]
        shown = [o for o in OUTCOMES if o not in _SHOWN_IF_ANY or self.total(o)]
        rows = [["type", *shown]]
        rows += [[name, *(f"{self.counts[name][o]:,}" for o in shown)] for name in names]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = []
        for row in rows:
            cells = [row[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
            lines.append("  ".join(cells))
        return "\n".join(lines)
