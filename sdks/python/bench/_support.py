"""Shared by the benchmarks: the real server from the tests' helper."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from maxine_server import MaxineServer  # noqa: E402

__all__ = ["MaxineServer"]
