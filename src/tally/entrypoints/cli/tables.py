"""One rendering rule for every table the CLI prints: an amount or an id is never cut.

Rich's own table fits a narrow terminal by cutting cells short with an ellipsis, which turns
``1156040.12`` into ``115604…``: wrong for a finance tool, where a figure read short is a
figure read wrong. This table keeps Rich's look and its ``Table(*headers, title=...)`` /
``add_row(*cells)`` calls, and lays itself out at print time, when the width is known:

- every word of every cell and header (an amount, an id, a timestamp: any run of characters
  without a space) keeps its whole width; only text with spaces wraps, at its spaces;
- when the boxed look does not fit, a compact one (no bars, two spaces between columns) is
  tried; when even the widest words of all columns side by side do not fit the terminal,
  each row becomes a block of ``column  value`` lines instead (the vertical layout), which
  loses nothing;
- cells are Rich markup (``[green]yes[/green]``) but never emoji codes, so that an id such
  as ``player:cake:wallet:EUR`` prints as it is;
- columns of figures are right-aligned, so digits line up;
- a table without rows says so in words, instead of printing a bare header.
"""

from __future__ import annotations

import re
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Column
from rich.table import Table as RichTable
from rich.text import Text

# A cell that is a figure: an amount, a count, a ratio or a percentage (what to right-align).
_FIGURE = re.compile(r"[-+]?\d[\d,]*(\.\d+)?%?")
# What an empty table prints (the README test looks for it: a command that finds nothing).
NOTHING = "nothing to show"
_GAP = 2  # between label and value in the vertical layout


def _width(text: str) -> int:
    return max((Text(line).cell_len for line in text.splitlines()), default=0)


def _longest_word(text: str) -> int:
    return max((Text(word).cell_len for word in text.split()), default=0)


class Table:
    """A table of text cells (Rich markup allowed) that never cuts a word short."""

    def __init__(self, *headers: str, title: str | None = None, expand: bool = False) -> None:
        self.headers = list(headers)
        self.title = title
        self.expand = expand
        self.rows: list[list[str]] = []

    def add_row(self, *cells: str) -> None:
        if len(cells) > len(self.headers):
            raise ValueError(f"{len(cells)} cells for {len(self.headers)} columns")
        self.rows.append([*cells, *([""] * (len(self.headers) - len(cells)))])

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if not self.rows:
            yield Text(f"{self.title}: {NOTHING}" if self.title else NOTHING, style="dim")
            return
        cells = [[console.render_str(c, emoji=False) for c in row] for row in self.rows]
        plain = [[t.plain for t in row] for row in cells]
        columns = list(zip(*plain, strict=True))
        natural = [
            max(_width(h), *(_width(c) for c in col))
            for h, col in zip(self.headers, columns, strict=True)
        ]
        wanted = [max(_width(c) for c in col) for col in columns]
        minimum = [
            max(_longest_word(h), *(_longest_word(c) for c in col), 1)
            for h, col in zip(self.headers, columns, strict=True)
        ]
        n = len(self.headers)
        # Boxed: a bar before each column and one after, a space each side of every cell.
        # Compact: no bars, a rule under the header, two spaces between columns.
        for compact, room in (
            (False, options.max_width - (3 * n + 1)),
            (True, options.max_width - 2 * (n - 1)),
        ):
            if sum(minimum) <= room:
                yield self._horizontal(
                    cells, columns, _fit(wanted, natural, minimum, room), compact
                )
                return
        yield from self._vertical(cells, options.max_width)

    def _horizontal(
        self,
        cells: list[list[Text]],
        columns: list[tuple[str, ...]],
        widths: list[int],
        compact: bool,
    ) -> RichTable:
        look: dict[str, Any] = (
            {"box": box.SIMPLE_HEAD, "show_edge": False, "pad_edge": False, "padding": (0, 1, 0, 0)}
            if compact
            else {}
        )
        table = RichTable(
            *(
                Column(
                    header,
                    width=width,
                    overflow="fold",
                    justify="right" if _figures(col) else "left",
                )
                for header, col, width in zip(self.headers, columns, widths, strict=True)
            ),
            title=self.title,
            expand=self.expand,
            **look,
        )
        for row in cells:
            table.add_row(*row)
        return table

    def _vertical(self, cells: list[list[Text]], max_width: int) -> RenderResult:
        label = max(_width(h) for h in self.headers)
        label_word = max(_longest_word(h) for h in self.headers)
        words = max(_longest_word(t.plain) for row in cells for t in row)
        stacked = label_word + _GAP + words > max_width
        if not stacked and label + _GAP + words > max_width:
            label = max_width - _GAP - words  # labels wrap at their spaces; values stay whole
        value = max(
            1, min(max_width - _GAP - label, max(_width(t.plain) for r in cells for t in r))
        )
        if self.title:
            yield Text(self.title, style="italic")
        for n, row in enumerate(cells):
            if n:
                yield Text("─" * min(max_width, label + _GAP + value), style="dim")
            if stacked:
                # Too narrow for label and value side by side: the label on its own line.
                indent = _GAP if words + _GAP <= max_width else 0
                for header, cell in zip(self.headers, row, strict=True):
                    yield Text(header, style="bold")
                    yield Padding(cell, (0, 0, 0, indent))
                continue
            grid = RichTable.grid(padding=(0, _GAP, 0, 0))
            grid.add_column(style="bold", width=label, overflow="fold")
            grid.add_column(width=value, overflow="fold")
            for header, cell in zip(self.headers, row, strict=True):
                grid.add_row(header, cell)
            yield grid


def _figures(column: tuple[str, ...]) -> bool:
    filled = [c for c in column if c.strip()]
    return bool(filled) and all(_FIGURE.fullmatch(c.strip()) for c in filled)


def _fit(wanted: list[int], natural: list[int], minimum: list[int], room: int) -> list[int]:
    """Column widths: each at least its widest word; the room left goes first to cells
    (``wanted``: each column's widest cell), then to headers (``natural``), a character at a
    time to the column nearest its goal, so that as many columns as possible stay unwrapped."""
    widths = list(minimum)
    spare = room - sum(widths)
    for goal in (wanted, natural):
        while spare > 0:
            short = [g - w for g, w in zip(goal, widths, strict=True) if g > w]
            if not short:
                break
            nearest = min(short)
            at = next(
                i for i, (g, w) in enumerate(zip(goal, widths, strict=True)) if g - w == nearest
            )
            widths[at] += 1
            spare -= 1
    return widths


__all__ = ["NOTHING", "Table"]
