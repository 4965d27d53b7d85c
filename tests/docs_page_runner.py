"""Run one docs page's ```python blocks in order, in one namespace: `python docs_page_runner.py PAGE`.

tests/test_docs.py starts it once per page, so a page that fails cannot leave its servers,
exporters and threads running in the test process (where they would write into later tests' files).
Exits 1, with the failing block and its traceback on stderr, when a block raises.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from test_docs import _blocks


def main(page: Path) -> int:
    """Run the page's blocks; shut down every Telemetry they left open, whatever happened."""
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    try:
        for index, code in enumerate(_blocks(page, "python")):
            try:
                exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
            except BaseException:
                print(f"{page.name} block {index} failed:\n{code}", file=sys.stderr)
                traceback.print_exc()
                return 1
    finally:
        for value in list(namespace.values()):
            if type(value).__name__ == "Telemetry":
                value.shutdown()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
