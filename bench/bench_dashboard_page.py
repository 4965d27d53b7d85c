"""The dashboard page under 1,000 events/s: does it keep up, and does it stay responsive?

A server (SQLite, writer flushing every 100 ms as `telemetry dashboard` runs it) in this process,
events tracked at a steady rate from a thread (batches of 100 every 100 ms), and Debian's Chromium
(Playwright, headless) on each page in turn. In the page, a 50 ms timer measures how late it fires
(main-thread lag: how long input would wait) and the page's own counter says how many live events
it received. Figures per page: events received of those sent, lag p50 / p99 / max.

    python bench/bench_dashboard_page.py                  # 1,000 events/s, 10 s per page
    python bench/bench_dashboard_page.py --rate 2000 --seconds 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import emit, machine, percentile

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
LAG_PROBE = """() => { window.__lags = []; let last = performance.now();
  window.__probe = setInterval(() => { const now = performance.now(); window.__lags.push(now - last - 50);
  last = now; }, 50); }"""


def main(argv: list[str] | None = None) -> None:
    """Ingest at the rate while the page is open; print JSON and a summary."""
    from playwright.sync_api import sync_playwright

    from vibekit_telemetry import Telemetry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "rate": args.rate, "pages": {}}
    summary = [f"dashboard page while ingesting {args.rate:,} events/s ({args.seconds:.0f} s per page, headless "
               "Chromium)"]
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp, sync_playwright() as playwright:
        telemetry = Telemetry(db_path=str(Path(tmp) / "p.db"), stream_flush_interval_ms=100,
                              block_timeout_ms=600_000)
        server = telemetry.start_api_server(port=0, dashboard=True, rate_limit="off")
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            for name in ("overview", "live"):
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{server.url}/dashboard/#/{name}")
                page.wait_for_function("document.querySelector('#conn').dataset.state === 'live'")
                time.sleep(1.0)
                before = page.evaluate("window.vibekitDashboard.agg.total")
                page.evaluate(LAG_PROBE)
                sent = _ingest(telemetry, args.rate, args.seconds)
                telemetry.flush(timeout=60)
                time.sleep(1.5)
                received = page.evaluate("window.vibekitDashboard.agg.total") - before
                lags = sorted(page.evaluate("window.__lags"))
                page.close()
                row = {"sent": sent, "received": received, "lag_p50_ms": percentile(lags, 50),
                       "lag_p99_ms": percentile(lags, 99), "lag_max_ms": lags[-1] if lags else 0.0}
                results["pages"][name] = row
                summary.append(f"  {name:<9}: {received:,} of {sent:,} events received; main-thread lag p50 "
                               f"{row['lag_p50_ms']:.0f} ms, p99 {row['lag_p99_ms']:.0f} ms, "
                               f"max {row['lag_max_ms']:.0f} ms")
        finally:
            browser.close()
            server.stop()
            telemetry.shutdown()
    emit("dashboard_page", results, summary)


def _ingest(telemetry: Any, rate: int, seconds: float) -> int:
    """Track `rate` events a second for `seconds`, in batches of 100 against the clock; return how many."""
    batch = 100
    interval = batch / rate
    sent = 0
    started = time.monotonic()
    n = 0
    stop = started + seconds
    while time.monotonic() < stop:
        due = started + n * interval
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sid = f"bench-{n}"
        telemetry.track_batch([{"event_type": "start", "session_id": sid, "category": "claude", "label": "go"}] +
                              [{"event_type": "stream", "session_id": sid, "stream_data": "x" * 80}
                               for _ in range(batch - 1)])
        sent += batch
        n += 1
    return sent


if __name__ == "__main__":
    main()
