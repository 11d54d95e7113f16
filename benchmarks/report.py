"""Rows of the benchmark table: a figure without and with clientdedupe, its target, and
whether the target is met; printed as a table and written as JSON."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """What a row must show, as a ratio or a difference of its two figures.

    ``kind``:

    - ``"lower"``: ``without / with >= value`` (clientdedupe is that many times cheaper);
    - ``"within"``: ``with / without <= value`` (clientdedupe costs at most that many
      times the baseline, e.g. the floor);
    - ``"between"``: ``low <= with / without <= value`` (e.g. linear growth);
    - ``"to_one"``: ``without == n and with == 1`` (N clients, connections... become 1);
    - ``"added"``: ``with - without <= value`` (an added cost, in the row's unit).
    """

    kind: str
    value: float = 0.0
    low: float = 0.0
    n: int = 0

    def describe(self, unit: str) -> str:
        """The target as printed in the table."""
        if self.kind == "lower":
            return f">= {self.value:g}x lower"
        if self.kind == "within":
            return f"<= {self.value:g}x"
        if self.kind == "between":
            return f"{self.low:g}x to {self.value:g}x"
        if self.kind == "to_one":
            return f"{self.n} -> 1"
        return f"<= +{format_value(self.value, unit)}"

    def ratio(self, without: float, with_: float) -> float | None:
        """The figure the target is about (a ratio or a difference)."""
        if self.kind in ("lower", "to_one"):
            return without / with_ if with_ else math.inf
        if self.kind in ("within", "between"):
            return with_ / without if without else None
        return with_ - without

    def met(self, without: float, with_: float) -> bool:
        """Whether the two figures meet the target."""
        ratio = self.ratio(without, with_)
        if self.kind == "to_one":
            return without == self.n and with_ == 1
        if ratio is None:
            return False
        if self.kind == "lower":
            return ratio >= self.value
        if self.kind == "between":
            return self.low <= ratio <= self.value
        return ratio <= self.value


@dataclass
class Row:
    """One line of the table."""

    id: str
    section: str
    label: str
    unit: str
    without: float | None = None
    with_: float | None = None
    target: Target | None = None
    #: Why the row could not be measured, or what limits it.
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """The row's ratio (or difference, for an ``added`` target)."""
        if self.without is None or self.with_ is None:
            return None
        target = self.target or Target("lower")
        return target.ratio(self.without, self.with_)

    @property
    def met(self) -> bool | None:
        """True/False against the target; None without target or without figures."""
        if self.target is None or self.without is None or self.with_ is None:
            return None
        return self.target.met(self.without, self.with_)

    def as_json(self) -> dict[str, Any]:
        """The row as a JSON object."""
        ratio = self.ratio
        return {
            "id": self.id,
            "section": self.section,
            "label": self.label,
            "unit": self.unit,
            "without": self.without,
            "with": self.with_,
            "ratio": None if ratio is None or math.isinf(ratio) else ratio,
            "target": None if self.target is None else self.target.describe(self.unit),
            "met": self.met,
            "note": self.note,
            **({"extra": self.extra} if self.extra else {}),
        }


def not_run(id: str, section: str, label: str, unit: str, why: str) -> Row:
    """A row that could not be measured, and why."""
    return Row(id, section, label, unit, note=f"not run: {why}")


def format_value(value: float | None, unit: str) -> str:
    """``value`` in ``unit`` (``s``, ``bytes``, ``count``), scaled for reading."""
    if value is None:
        return "-"
    if unit == "s":
        magnitude = abs(value)
        if magnitude >= 1:
            return f"{value:.2f} s"
        if magnitude >= 1e-3:
            return f"{value * 1e3:.2f} ms"
        if magnitude >= 1e-6:
            return f"{value * 1e6:.2f} us"
        return f"{value * 1e9:.0f} ns"
    if unit == "bytes":
        return f"{value / 2**20:.1f} MiB"
    if value == int(value):
        return str(int(value))
    return f"{value:.1f}"


def _format_ratio(row: Row) -> str:
    ratio = row.ratio
    if ratio is None:
        return "-"
    if row.target is not None and row.target.kind == "added":
        return ("+" if ratio >= 0 else "") + format_value(ratio, row.unit)
    if math.isinf(ratio):
        return "inf"
    return f"{ratio:.3g}x" if ratio < 100 else f"{ratio:.0f}x"


def _format_met(row: Row) -> str:
    met = row.met
    if met is None:
        return "-"
    return "yes" if met else "NO"


def format_table(rows: list[Row]) -> str:
    """The table: section, row, without, with, ratio, target, met; then the notes."""
    header = ("", "without", "with", "ratio", "target", "met")
    cells: list[tuple[str, ...] | str] = []
    notes: list[str] = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            cells.append(section)
        label = row.label
        if row.note:
            notes.append(row.note)
            label += f" [{len(notes)}]"
        cells.append(
            (
                label,
                format_value(row.without, row.unit),
                format_value(row.with_, row.unit),
                _format_ratio(row),
                "-" if row.target is None else row.target.describe(row.unit),
                _format_met(row),
            )
        )
    table = [header] + [c for c in cells if isinstance(c, tuple)]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]

    def line(values: tuple[str, ...]) -> str:
        first = f"  {values[0]:<{widths[0]}}"
        rest = [f"{value:>{width}}" for value, width in zip(values[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    out = [line(header)]
    for cell in cells:
        out.append(cell if isinstance(cell, str) else line(cell))
    if notes:
        out.append("")
        out.extend(f"[{i}] {note}" for i, note in enumerate(notes, start=1))
    return "\n".join(out)
