"""Hostile input never escapes into the application and never sinks the good events beside it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from vibekit_telemetry import Telemetry, ValidationError

MakeTelemetry = Callable[..., Telemetry]


class _Unreadable(dict):  # type: ignore[type-arg]
    """A mapping whose iteration raises (a lazy proxy whose backend is gone, say)."""

    def __iter__(self) -> Any:
        raise RuntimeError("backend gone")

    def keys(self) -> Any:
        raise RuntimeError("backend gone")


def _session_event(telemetry: Telemetry, metadata: Any) -> object:
    with telemetry.session("claude", "code", "p") as session:
        return session.event("tool-call", metadata=metadata)


def _cyclic() -> dict[str, Any]:
    meta: dict[str, Any] = {"ok": 1}
    meta["self"] = meta
    return meta


HOSTILE: list[tuple[str, Callable[[Telemetry], object], str]] = [
    ("huge int value", lambda t: t.track({"event_type": "custom", "category": "c", "value": 10**400}), "value"),
    ("huge duration", lambda t: t.track_end(t.track_start("a", "b", "c"), duration=10**400), "duration"),
    ("list event type", lambda t: t.track({"event_type": ["start"], "category": "c"}), "event_type"),
    ("timestamp in microseconds", lambda t: t.track({"event_type": "custom", "category": "c",
                                                     "timestamp": 10**20}), "timestamp"),
    ("cyclic metadata", lambda t: t.track_start("claude", "code", "p", metadata=_cyclic()), "metadata.self"),
    ("cyclic metadata in a dict", lambda t: t.track({"event_type": "custom", "category": "c",
                                                      "metadata": _cyclic()}), "metadata.self"),
    ("unreadable metadata", lambda t: t.track_start("claude", "code", "p", metadata=_Unreadable(a=1)), "metadata"),
    ("unreadable metadata of a session's event", lambda t: _session_event(t, _Unreadable(a=1)), "metadata"),
]


@pytest.mark.parametrize(("name", "call", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_named_in_strict_mode(make_telemetry: MakeTelemetry, name: str,
                                               call: Callable[[Telemetry], object], field: str) -> None:
    strict = make_telemetry(raise_on_error=True)
    with pytest.raises(ValidationError) as info:
        call(strict)
    # A cycle is named where it closes: metadata.self, or metadata.self.self when the SDK copied the
    # outer dict (it copies what the caller may reuse).
    assert info.value.field == field or info.value.field.startswith(field + ".")


@pytest.mark.parametrize(("name", "call", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_counted_and_the_rest_of_the_batch_is_stored(
        make_telemetry: MakeTelemetry, name: str, call: Callable[[Telemetry], object], field: str) -> None:
    telemetry = make_telemetry(stream_flush_interval_ms=60_000)  # everything lands in one batch
    before = telemetry.track_start("claude", "code", "before")
    call(telemetry)  # must not raise
    after = telemetry.track_start("claude", "code", "after")
    assert not telemetry.flush(10)  # something tracked since the last flush was lost: flush says so
    assert telemetry.get_session(before) is not None and telemetry.get_session(after) is not None
    health = telemetry.get_health_status()
    assert health["dropped"]["invalid"] == 1, health
    assert health["writer"]["batch_errors"] == 0 and health["dropped"]["store_failures"] == 0


def test_ids_stay_time_ordered_after_a_far_future_timestamp(make_telemetry: MakeTelemetry) -> None:
    from vibekit_telemetry.ids import uuid7

    telemetry = make_telemetry()
    telemetry.track({"event_type": "custom", "category": "c", "timestamp": 253_402_300_799_999})
    telemetry.flush(10)
    first, second = uuid7(), uuid7()
    assert first < second
    id_ms = int(first.replace("-", ""), 16) >> 80
    assert abs(id_ms - time.time() * 1000) < 60_000  # the process clock was not dragged to the year 9999
    assert telemetry.query(category="c")[0].event_id is not None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_shut_down_telemetry_stays_shut_down_in_a_forked_child(make_telemetry: MakeTelemetry) -> None:
    telemetry = make_telemetry()
    telemetry.shutdown()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            import threading

            writers = [t for t in threading.enumerate() if t.name == "vibekit-telemetry-writer"]
            ok = telemetry.track_start("claude", "code", "p") and not writers
            runtime = telemetry.runtime
            os.write(write_fd, b"1" if runtime is None or not runtime.worker.is_alive() else b"0")
            del ok
        finally:
            os._exit(0)
    os.close(write_fd)
    assert os.read(read_fd, 1) == b"1"
    os.waitpid(pid, 0)


def test_a_row_the_store_refuses_costs_only_that_row(make_telemetry: MakeTelemetry) -> None:
    from vibekit_telemetry import BaseStorageProvider, BatchResult, TelemetryEvent

    class Picky(BaseStorageProvider):
        """Refuses a whole batch (as one transaction would) when any event in it is poisoned."""

        def __init__(self) -> None:
            self.stored: list[str | None] = []

        def store_batch(self, events: Any) -> BatchResult:
            if any(e.label == "poison" for e in events):
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
            self.stored.extend(e.label for e in events)
            return BatchResult(stored=len(events))

    picky = Picky()
    telemetry = make_telemetry(storage=[picky], stream_flush_interval_ms=60_000)
    for i in range(9):
        telemetry.track(TelemetryEvent("custom", "c", label=f"ok{i}"))
        if i == 4:
            telemetry.track(TelemetryEvent("custom", "c", label="poison"))
    assert not telemetry.flush(10)  # the poisoned event was lost, and flush says so
    assert sorted(label or "" for label in picky.stored) == [f"ok{i}" for i in range(9)]
    health = telemetry.get_health_status()
    assert health["dropped"]["rejected_by_store"] == 1 and health["rejected_reasons"] == {"store": 1}
    assert health["dropped"]["store_failures"] == 0


class _BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize("strict", [False, True], ids=["default", "raise_on_error"])
def test_an_applications_exception_is_recorded_whatever_its_message_does(
        make_telemetry: MakeTelemetry, strict: bool) -> None:
    # The error events an application most needs are of its odd exceptions: none may be lost.
    telemetry = make_telemetry(raise_on_error=strict)
    sid = telemetry.track_start("claude", "code", "p")
    assert telemetry.track_error(sid, _BrokenStr())
    assert telemetry.track_error(sid, FileNotFoundError(2, "No such file", "report-\udcff.txt"))  # surrogateescape
    assert telemetry.track_error(sid, ValueError("x" * 100_000))
    assert telemetry.flush(10)
    broken, missing, huge = telemetry.query(session_id=sid, event_type="error", order="asc")
    assert broken.label == "_BrokenStr: <message unavailable: str() raised RuntimeError>"
    assert broken.metadata == {"error": {"type": "_BrokenStr",
                                         "message": "<message unavailable: str() raised RuntimeError>"}}
    assert missing.label == "FileNotFoundError: [Errno 2] No such file: 'report-\\udcff.txt'"
    assert len(huge.metadata["error"]["message"]) == 8192 and huge.label.startswith("ValueError: xxx")


def test_a_session_never_replaces_the_applications_exception(make_telemetry: MakeTelemetry) -> None:
    class RefuseErrors:
        name = "refuse-errors"

        def process(self, event: Any) -> Any:
            if event.event_type in ("error", "end"):
                raise ValidationError("event_type", "no errors today", event.event_type)
            return event

    strict = make_telemetry(raise_on_error=True, processors=[RefuseErrors()])
    with pytest.raises(KeyError) as info, strict.session("claude", "code", "p"):
        raise KeyError("the application's own")
    notes = getattr(info.value, "__notes__", [])
    assert len(notes) == 2 and all("could not record this" in note and "no errors today" in note for note in notes)
