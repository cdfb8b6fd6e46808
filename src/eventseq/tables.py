"""Result tables as text: aligned columns for a terminal, or Markdown for a report file.

Every command that prints a table of results (`eventseq evaluate`, `eventseq rec evaluate`) renders it
here; each formats its own cells (e.g. "mean ± std") and hands them over as strings.
"""

from __future__ import annotations

from collections.abc import Sequence


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False,
                 right_aligned: Sequence[str] = ()) -> str:
    """Render rows of cells under a header.

    Args:
        header: the column names.
        rows: one list of cell strings per row, in the header's order.
        markdown: a Markdown table instead of aligned plain text.
        right_aligned: columns right-aligned in plain text (numbers read better so).

    Returns:
        The table; plain text has the header, a rule of dashes, then the rows, without trailing spaces.
    """
    header, rows = list(header), [list(row) for row in rows]
    if any(len(row) != len(header) for row in rows):
        raise ValueError(f"every row needs {len(header)} cells, one per column of {header}")
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]

    def render(line: list[str]) -> str:
        cells = [cell.rjust(width) if name in right_aligned else cell.ljust(width)
                 for cell, width, name in zip(line, widths, header)]
        return "  ".join(cells).rstrip()

    return "\n".join([render(header), render(["-" * width for width in widths]), *(render(row) for row in rows)])
