"""Run the examples in docs/*.md so the documentation cannot drift from the code.

```python blocks of one page run in order in one namespace, in a process of their own
(docs_page_runner.py); in ```console blocks every line that starts
with `$ ` runs in a shell and must exit 0 (or the code named by a trailing `# exit N`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
EXIT = re.compile(r"\s+#\s*exit\s+(\d+)\s*$")


def _blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text(encoding="utf-8")) if lang == language]


PAGES = sorted(DOCS.glob("*.md"))
PY_PAGES = [p for p in PAGES if _blocks(p, "python")]
CONSOLE_PAGES = [p for p in PAGES if _blocks(p, "console")]


RUNNER = Path(__file__).resolve().parent / "docs_page_runner.py"


@pytest.mark.parametrize("page", PY_PAGES, ids=lambda p: p.name)
def test_python_examples(page: Path, tmp_path: Path) -> None:
    # Its own interpreter per page (docs_page_runner.py): a failing page cannot leak servers or threads.
    result = subprocess.run([sys.executable, str(RUNNER), str(page)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (f"{page.name} exited {result.returncode}\n"
                                    f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-6000:]}")


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=lambda p: p.name)
def test_console_examples(page: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "160", "NO_COLOR": "1"}
    for block in _blocks(page, "console"):
        for line in block.splitlines():
            if not line.startswith("$ "):
                continue
            command = line[2:]
            expected = 0
            match = EXIT.search(command)
            if match:
                expected = int(match.group(1))
                command = command[: match.start()]
            result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert result.returncode == expected, (
                f"{page.name}: `{command}` exited {result.returncode}, expected {expected}\n"
                f"stdout:\n{result.stdout[-2000:]}\nstderr:\n{result.stderr[-2000:]}")
