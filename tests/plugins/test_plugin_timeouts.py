"""A before_track call that times out cannot change events: it works on copies, and stops early."""

from __future__ import annotations

import threading
from pathlib import Path

from vibekit_telemetry import Telemetry
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.plugins import Plugin, PluginManager


class LateMutator(Plugin):
    """Hangs on its first event until released, then changes it in place (and nested data too)."""

    name = "late-mutator"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.done = threading.Event()
        self.seen: list[TelemetryEvent] = []

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        self.seen.append(event)
        if len(self.seen) == 1:
            self.release.wait(30)
            event.label = "changed late"
            if event.metadata is not None:
                event.metadata["nested"]["n"] = -1
                event.metadata["added"] = True
            self.done.set()
        return event


def test_late_before_track_cannot_change_a_stored_or_streamed_event(tmp_path: Path) -> None:
    plugin = LateMutator()
    with Telemetry(db_path=str(tmp_path / "t.db"), plugin_timeout_s=0.2).use(plugin) as t:
        stream = t.create_event_stream({"session_id": "s-late"})
        try:
            t.track({"event_type": "start", "session_id": "s-late", "agent_type": "claude", "label": "original",
                     "metadata": {"nested": {"n": 1}}})
            assert t.flush()
            live = stream.get(timeout=10)  # the very object the writer committed and listeners got
            assert live is not None
            plugin.release.set()
            assert plugin.done.wait(10)  # the late call has finished changing what it was given
            assert plugin.seen[0].label == "changed late"  # it did change its copy...
            assert live.label == "original" and live.metadata == {"nested": {"n": 1}}  # ...not the event
            stored = t.query(session_id="s-late")
            assert [(e.label, e.metadata) for e in stored] == [("original", {"nested": {"n": 1}})]
        finally:
            plugin.release.set()
            stream.close()


def test_timed_out_call_takes_no_further_event_of_its_batch() -> None:
    plugin = LateMutator()
    manager = PluginManager(timeout_s=0.2)
    manager.add(plugin)
    events = [TelemetryEvent("stream", "claude", session_id="b", stream_data=str(i), metadata={"nested": {"n": i}})
              for i in range(3)]
    try:
        out = manager.track_step.process_batch(events)
        assert [e is o for e, o in zip(events, out, strict=True)] == [True, True, True]  # passed on unchanged
        plugin.release.set()
        assert plugin.done.wait(10)
        manager.shutdown()  # joins the plugin's thread: whatever the late call did is done
        assert len(plugin.seen) == 1  # events 1 and 2 never reached the timed-out call
        assert [e.metadata for e in events] == [{"nested": {"n": i}} for i in range(3)]
    finally:
        plugin.release.set()


def test_a_plugin_that_answers_in_time_still_changes_the_event(tmp_path: Path) -> None:
    class Upper(Plugin):
        name = "upper"

        def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
            event.label = (event.label or "").upper()
            if event.metadata is not None:
                event.metadata["seen"] = True
            return event

    with Telemetry(db_path=str(tmp_path / "t.db")).use(Upper()) as t:
        t.track({"event_type": "start", "session_id": "s", "agent_type": "claude", "label": "hi",
                 "metadata": {"k": [1, {"x": 2}]}})
        assert t.flush()
        assert [(e.label, e.metadata) for e in t.query()] == [("HI", {"k": [1, {"x": 2}], "seen": True})]
