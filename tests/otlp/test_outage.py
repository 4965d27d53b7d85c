"""The collector is down for 30 s under load, then back: every session arrives, the app is never held up.

Real components: a Telemetry on a SQLite file recording sessions from a thread, the otlp exporter
following its store, and an OTLP/HTTP capture server on a loopback port that is closed for 30 s.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from _otlp_support import Capture, attrs, free_port

from vibekit_telemetry import Telemetry
from vibekit_telemetry.otlp.exporter import session_trace_id

OUTAGE_S = 30.0
PAUSE_S = 0.05  # between sessions: about 20 sessions (100 events) a second


def test_a_dead_collector_loses_nothing_and_blocks_nothing(make_telemetry: Callable[..., Telemetry]) -> None:
    capture = Capture(free_port())  # not started: the collector is down
    telemetry = make_telemetry(storage=[
        {"type": "sqlite"},
        {"type": "otlp", "options": {"endpoint": capture.url, "timeout_s": 2, "retry_base_s": 0.1,
                                     "retry_max_s": 1.0, "failure_threshold": 3, "open_timeout_s": 1.0}}],
        backpressure="block", block_timeout_ms=100)
    sessions: list[str] = []
    stop = threading.Event()

    def agent() -> None:
        while not stop.is_set():
            sid = telemetry.track_start("claude", "chat", "load")
            for i in range(3):
                telemetry.track_stream(sid, f"chunk {i}")
            telemetry.track_end(sid, "completed")
            sessions.append(sid)
            time.sleep(PAUSE_S)

    thread = threading.Thread(target=agent, daemon=True)
    thread.start()
    time.sleep(OUTAGE_S)
    # While the collector is down, the writer keeps committing: every session is in the store, and
    # nothing was dropped at the queue (flush() is False if anything was lost; the exporter is off the
    # write path).
    ended = len(sessions)  # the agent keeps going: count what was ended before the flush
    assert telemetry.flush()
    assert len(telemetry.query(event_type="end", limit=100_000)) >= ended
    status = telemetry.runtime.exporters.status()[0]  # type: ignore[union-attr]
    assert status["failures"] > 0 and status["delivered"] == 0 and status["lag"] > 0
    capture.start()  # the collector is back
    try:
        stop.set()
        thread.join()
        assert telemetry.flush()
        assert telemetry.runtime.exporters.shutdown(timeout=30.0)  # type: ignore[union-attr]
        roots = [span for _, span in capture.spans()]
    finally:
        capture.stop()
    by_trace = {span.trace_id.hex(): span for span in roots}
    assert len(sessions) > 100
    assert set(by_trace) == {session_trace_id(sid) for sid in sessions}  # every session, once each
    assert len(roots) == len(by_trace)
    assert all(attrs(span.attributes)["vibekit.event_count"] == 5 for span in roots)
