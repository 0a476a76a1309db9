"""Docker's fork of Go's text/tabwriter (cli/command/formatter/tabwriter): aligns table output."""

from __future__ import annotations

import re


# =============================================================================================
# tabwriter: Docker's fork of Go's text/tabwriter (cli/command/formatter/tabwriter)

_TAB_SPLIT = re.compile(r"([\t\v\n\f])")


def _display_width(s: str, east_asian: bool) -> int:
    """Cell width as Docker's tabwriter measures it (``runewidth.StringWidth``): wide East
    Asian characters count 2, combining marks and control characters 0."""
    if s.isascii():
        if s.isprintable():
            return len(s)
        return sum(1 for c in s if " " <= c < "\x7f")
    import unicodedata

    width = 0
    after_zwj = open_flag = False
    for c in s:
        o = ord(c)
        is_ri = 0x1F1E6 <= o <= 0x1F1FF
        if o < 0x20 or 0x7F <= o <= 0x9F or o == 0xAD:
            w = 0
        elif o < 0x300 and not east_asian:
            w = 1
        elif after_zwj or (is_ri and open_flag):
            w = 0  # joined to the previous character in one grapheme cluster
        elif unicodedata.category(c) in ("Mn", "Me", "Cf", "Cs"):
            w = 0
        else:
            eaw = unicodedata.east_asian_width(c)
            w = 2 if eaw in ("W", "F") or (east_asian and eaw == "A") else 1
        open_flag = is_ri and not open_flag
        after_zwj = c == "\u200d"
        width += w
    return width


def tabwriter(
    text: str,
    minwidth: int = 10,
    tabwidth: int = 1,
    padding: int = 3,
    padchar: str = " ",
    *,
    east_asian: bool = False,
) -> str:
    """Align tab-terminated cells like Go's ``tabwriter`` (Docker's fork, flags 0).

    Defaults are Docker's ``NewWriter(out, 10, 1, 3, ' ', 0)``.  Cells are terminated by
    ``\\t`` (or ``\\v``); the text after a line's last tab is not part of a column.  A column
    block is a run of consecutive lines that have a cell in that column; its width is the
    widest cell plus ``padding``, at least ``minwidth``.  A line without tabs ends all blocks.
    ``east_asian`` counts ambiguous-width characters as 2, as Docker does in CJK locales.
    """
    if minwidth < 0 or tabwidth < 0 or padding < 0:
        raise ValueError("negative minwidth, tabwidth, or padding")
    out: list[str] = []
    lines: list[list[tuple[str, int]]] = [[]]

    def flush() -> None:
        _tw_format(out, lines, [], 0, len(lines), minwidth, tabwidth, padding, padchar)

    parts = _TAB_SPLIT.split(text)
    for k in range(0, len(parts) - 1, 2):
        cell, sep = parts[k], parts[k + 1]
        line = lines[-1]
        line.append((cell, _display_width(cell, east_asian) if cell else 0))
        if sep == "\n" or sep == "\f":
            lines.append([])
            if sep == "\f" or len(line) == 1:
                flush()
                lines = [[]]
    if parts[-1]:
        lines[-1].append((parts[-1], 0))
    flush()
    return "".join(out)


def _tw_format(out, lines, widths, line0, line1, minwidth, tabwidth, padding, padchar) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # a cell in this column: print the lines before the block, then size the block
        _tw_write_lines(out, lines, widths, line0, this, tabwidth, padchar)
        line0 = this
        width = minwidth
        while this < line1:
            line = lines[this]
            if column >= len(line) - 1:
                break
            w = line[column][1] + padding
            if w > width:
                width = w
            this += 1
        widths.append(width)
        _tw_format(out, lines, widths, line0, this, minwidth, tabwidth, padding, padchar)
        widths.pop()
        line0 = this
    _tw_write_lines(out, lines, widths, line0, line1, tabwidth, padchar)


def _tw_write_lines(out, lines, widths, line0, line1, tabwidth, padchar) -> None:
    for i in range(line0, line1):
        line = lines[i]
        for j, (text, w) in enumerate(line):
            if text:
                out.append(text)
            if j < len(widths):
                cellw = widths[j]
                if padchar == "\t":
                    if tabwidth:
                        cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
                        out.append("\t" * ((cellw - w + tabwidth - 1) // tabwidth))
                else:
                    out.append(padchar * (cellw - w))
        if i + 1 != len(lines):
            out.append("\n")
