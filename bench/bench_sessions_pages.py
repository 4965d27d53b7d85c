"""The dashboard's Sessions page over 100,000 sessions: /api/sessions pages (first, middle, last), filtered
pages and the prompt search, through a real server on SQLite.

Each figure is the best of 3 requests (ms), as the page issues them (50 a page).

    python bench/bench_sessions_pages.py                  # 100,000 sessions
    python bench/bench_sessions_pages.py --sessions 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, machine

AGENTS = ("claude", "codex", "gemini", "opencode", "grok")
PAGE = 50


def main(argv: list[str] | None = None) -> None:
    """Seed the sessions, then time each request the Sessions page makes."""
    import httpx

    from vibekit_telemetry import Telemetry
    from vibekit_telemetry.events import now_ms

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    args = parser.parse_args(argv)
    total = args.sessions
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        telemetry = Telemetry(db_path=str(Path(tmp) / "s.db"), block_timeout_ms=600_000)
        base = now_ms() - total * 1000
        for chunk in range(0, total, 5000):
            telemetry.track_batch([{"event_type": "start", "session_id": f"s{n:07d}", "category": AGENTS[n % 5],
                                    "label": f"prompt {n}", "timestamp": base + n * 1000}
                                   for n in range(chunk, min(total, chunk + 5000))])
        telemetry.flush(timeout=600)
        server = telemetry.start_api_server(port=0, rate_limit="off", dashboard=True)
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("first page", "/api/sessions", {}),
            ("middle page", "/api/sessions", {"offset": total // 2}),
            ("last page", "/api/sessions", {"offset": total - PAGE}),
            ("agent filter, page 200", "/api/sessions", {"category": "codex", "offset": 200 * PAGE}),
            ("status filter, oldest first, deep page", "/api/sessions",
             {"status": "active", "order": "asc", "offset": int(total * 0.9)}),
            ("started in the last 24 h", "/api/sessions", {"since": "24h"}),
            ("prompt search", "/api/events", {"event_type": "start", "contains": "prompt 4242"}),
        ]
        results: dict[str, Any] = {"machine": machine(), "sessions": total, "ms": {}}
        summary = [f"Sessions page over {total:,} sessions (SQLite, best of 3, {PAGE} a page)"]
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                for name, path, params in cases:
                    times = []
                    for _ in range(3):
                        started = time.perf_counter()
                        response = http.get(path, params={"limit": PAGE, **params})
                        response.raise_for_status()
                        times.append((time.perf_counter() - started) * 1000)
                    results["ms"][name] = min(times)
                    summary.append(f"  {name:<40} {min(times):8.1f} ms")
        finally:
            server.stop()
            telemetry.shutdown()
    emit("sessions_pages", results, summary)


if __name__ == "__main__":
    main()
