"""The README's examples, run as written (port swapped) by a fresh venv that ran `pip install ./sdks/python`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from maxine_server import REPO, MaxineServer

README = (REPO / "sdks" / "python" / "README.md").read_text(encoding="utf-8")
EXAMPLES = re.findall(r"```python\n(.*?)```\n\nIt prints:\n\n```\n(.*?)```", README, flags=re.S)


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fresh_python is the interpreter of a new venv into which `pip install ./sdks/python` was run."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "./sdks/python"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, f"pip install ./sdks/python failed:\n{install.stdout}\n{install.stderr}"
    return python


def test_the_readme_has_both_examples() -> None:
    assert len(EXAMPLES) == 2, "README: expected two ```python blocks each followed by 'It prints:'"
    assert all('"127.0.0.1:7400"' in script for script, _ in EXAMPLES)


@pytest.mark.parametrize("index", [0, 1], ids=["asyncio", "sync"])
def test_a_readme_example_prints_what_the_readme_says(index: int, fresh_python: Path, tmp_path: Path) -> None:
    script, printed = EXAMPLES[index]
    srv = MaxineServer().start()  # a fresh server: the printed revisions are those of a new registry
    try:
        path = tmp_path / "example.py"
        path.write_text(script.replace(":7400", f":{srv.port}"), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        run = subprocess.run([str(fresh_python), str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    finally:
        assert srv.stop() == 0
    assert run.stderr == ""
    assert run.stdout == printed
    assert run.returncode == 0
