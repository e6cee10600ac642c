"""Output helpers shared by the commands: rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)
