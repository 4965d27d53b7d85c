"""A before_track call that times out cannot change events the chain goes on with, and stops early."""

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
        assert out[0] is not events[0] and out[0] == events[0]  # the held event goes on as a copy
        assert out[1] is events[1] and out[2] is events[2]  # the rest untouched
        plugin.release.set()
        assert plugin.done.wait(10)
        manager.shutdown()  # joins the plugin's thread: whatever the late call did is done
        assert len(plugin.seen) == 1  # events 1 and 2 never reached the timed-out call
        assert events[0].label == "changed late"  # it changed the original it held...
        assert out[0] is not None and out[0].label is None and out[0].metadata == {"nested": {"n": 0}}  # ...only
        assert [e.metadata for e in events[1:]] == [{"nested": {"n": i}} for i in (1, 2)]
    finally:
        plugin.release.set()


class DropsTagsThenHangs(Plugin):
    name = "drops-tags-hangs"

    def __init__(self) -> None:
        self.release = threading.Event()

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        if event.stream_data == "0":
            return None
        if event.stream_data == "1":
            event.label = "tagged"
            return event
        self.release.wait(30)
        event.label = "too late"
        return event


def test_answers_given_before_the_timeout_are_kept() -> None:
    plugin = DropsTagsThenHangs()
    manager = PluginManager(timeout_s=0.2)
    manager.add(plugin)
    events = [TelemetryEvent("stream", "claude", session_id="b", stream_data=str(i)) for i in range(4)]
    try:
        out = manager.track_step.process_batch(events)
        assert out[0] is None and out[1] is not None and out[1].label == "tagged"
        assert out[2] is not None and out[2] is not events[2] and out[2].label is None
        assert out[3] is events[3]
    finally:
        plugin.release.set()
        manager.shutdown()
    assert out[2].label is None and events[2].label == "too late"


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
