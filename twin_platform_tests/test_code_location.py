"""The code location loads the way Dagster's own tools load it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "dg"), "check", "defs"],
        [str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
    ],
    ids=["dg-check-defs", "workspace-yaml"],
)
def test_code_location_validates(command: list[str]):
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
