"""Output helpers shared by the commands: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

out = Console()
err = Console(stderr=True)


def literal(*parts: object | tuple[str, str]) -> Text:
    """Text that prints exactly as given: each part literally, a ``(text, style)`` pair styled.

    Rich reads ``[...]`` in a plain string as markup and ``:name:`` as an emoji code, so a file named
    ``[blink]x.md`` would print as ``x.md`` and ``http://[fd00::1]/`` as ``http:///``. Every value that
    comes from a user, a file or the web (names, paths, URLs, titles, reasons quoting them) goes through
    this, in lines, table cells, panel titles and status messages alike.
    """
    return Text.assemble(*(part if isinstance(part, tuple) else str(part) for part in parts))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (``message`` literally: it often quotes user input) and return the Exit to raise."""
    err.print(literal(("error:", "bold red"), " ", message))
    return typer.Exit(code)
