"""Plugins through a real Telemetry on a real SQLite file: hooks, isolation, discovery, the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.plugins import Plugin, QueryResult, available


def _telemetry(tmp_path: Path, **options: Any) -> Telemetry:
    return Telemetry(db_path=str(tmp_path / "t.db"), **options)


class Tagger(Plugin):
    name = "tagger"

    def __init__(self) -> None:
        self.stored: list[str] = []
        self.tracked = 0
        self.initialized_with: Any = None
        self.shut = False

    def initialize(self, telemetry: Any) -> None:
        self.initialized_with = telemetry

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        if event.metadata and event.metadata.get("secret"):
            return None
        event.metadata = {**(event.metadata or {}), "tagged": True}
        return event

    def after_track(self, event: TelemetryEvent) -> None:
        self.tracked += 1

    def after_store(self, events: list[TelemetryEvent]) -> None:
        self.stored.extend(e.event_id or "" for e in events)

    def shutdown(self) -> None:
        self.shut = True


def test_hooks_change_drop_and_see_committed_events(tmp_path: Path) -> None:
    plugin = Tagger()
    t = _telemetry(tmp_path).use(plugin)
    assert plugin.initialized_with is t
    sid = t.track_start("claude", "code", "hi")
    t.track_stream(sid, "kept")
    t.track({"event_type": "stream", "session_id": sid, "stream_data": "x", "metadata": {"secret": 1}})
    assert t.flush()
    events = t.query(session_id=sid)
    assert len(events) == 2 and all(e.metadata and e.metadata["tagged"] for e in events)
    t.shutdown()
    assert plugin.shut and sorted(plugin.stored) == sorted(e.event_id for e in events)
    assert plugin.tracked == 2


class Raiser(Plugin):
    name = "raiser"

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        raise RuntimeError("boom")

    def after_store(self, events: list[TelemetryEvent]) -> None:
        raise RuntimeError("boom")

    def before_query(self, kind: str, filter: Any) -> Any:
        raise RuntimeError("boom")


class Sleeper(Plugin):
    name = "sleeper"

    def __init__(self) -> None:
        self.release = threading.Event()

    def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:
        self.release.wait()  # hangs until the test ends
        return event


def test_raising_and_hanging_plugins_never_stop_tracking(tmp_path: Path) -> None:
    sleeper = Sleeper()
    t = _telemetry(tmp_path, plugins=[Raiser(), sleeper], plugin_timeout_s=0.2, plugin_max_failures=3)
    try:
        sid = t.track_start("claude", "code", "hi")
        assert t.flush()
        for index in range(20):
            t.track_stream(sid, f"chunk {index}")
            assert t.flush()  # one batch per event: every batch meets both plugins
        assert len(t.query(session_id=sid)) == 21
        status = {s["name"]: s for s in t.runtime.plugins.status()}  # type: ignore[union-attr]
        assert status["raiser"]["errors"] >= 3 and status["raiser"]["disabled"]
        assert status["sleeper"]["timeouts"] == 1 and status["sleeper"]["stuck"]
        assert status["sleeper"]["skipped"] >= 20  # skipped while stuck, not waited for
    finally:
        sleeper.release.set()
        t.shutdown()


def test_plugin_that_hangs_in_strict_mode_does_not_raise(tmp_path: Path) -> None:
    sleeper = Sleeper()
    t = _telemetry(tmp_path, raise_on_error=True, plugin_timeout_s=0.2).use(sleeper)
    try:
        assert t.track_start("claude", "code", "hi")
        assert t.flush() and len(t.query()) == 1
    finally:
        sleeper.release.set()
        t.shutdown()


class AsyncCounter(Plugin):
    name = "async-counter"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def before_track(self, event: TelemetryEvent) -> TelemetryEvent | None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.seen.append(event.event_type)
        return event

    async def after_query(self, kind: str, filter: Any, result: Any) -> Any:
        await asyncio.sleep(0)
        return result[:1] if kind == "query" else None


def test_async_hooks_are_awaited(tmp_path: Path) -> None:
    plugin = AsyncCounter()
    with _telemetry(tmp_path).use(plugin) as t:
        sid = t.track_start("claude", "code", "hi")
        t.track_end(sid)
        assert t.flush()
        assert plugin.seen == ["start", "end"]
        assert len(t.query()) == 1  # after_query cut the result


class Answering(Plugin):
    name = "answering"

    def before_query(self, kind: str, filter: Any) -> Any:
        return QueryResult(["from plugin"]) if kind == "query" else None


def test_before_query_can_answer_without_the_store(tmp_path: Path) -> None:
    with _telemetry(tmp_path).use(Answering()) as t:
        assert t.query() == ["from plugin"]
        assert t.get_stats().total_events == 0


def test_bad_plugins_are_refused_with_the_field_named(tmp_path: Path) -> None:
    with _telemetry(tmp_path) as t:
        with pytest.raises(ValidationError, match="plugin"):
            t.use(object())
        t.use(Tagger())
        with pytest.raises(ValidationError, match="not in use"):
            t.use(Tagger())
    with pytest.raises(ValidationError, match=r"plugins\[0\]\.type"):
        _telemetry(tmp_path, plugins=["no-such-plugin"])


def _install_sample_package(root: Path) -> Path:
    """Install a third-party plugin package the way pip lays it out: module + dist-info with entry points."""
    site = root / "site"
    (site / "acme_plugin").mkdir(parents=True)
    (site / "acme_plugin" / "__init__.py").write_text(
        "from vibekit_telemetry.plugins import Plugin\n\n"
        "class AcmePlugin(Plugin):\n"
        "    name = 'acme'\n"
        "    def __init__(self, tag='acme'):\n"
        "        self.tag = tag\n"
        "    def before_track(self, event):\n"
        "        event.metadata = {**(event.metadata or {}), 'acme': self.tag}\n"
        "        return event\n")
    info = site / "acme_plugin-1.2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 1.2.0\n")
    (info / "entry_points.txt").write_text("[vibekit_telemetry.plugins]\nacme = acme_plugin:AcmePlugin\n")
    return site


def test_installed_plugin_is_discovered_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = _install_sample_package(tmp_path)
    monkeypatch.syspath_prepend(str(site))
    assert {"name": "acme", "source": "acme-plugin 1.2.0", "target": "acme_plugin:AcmePlugin"} in available()
    with _telemetry(tmp_path, plugins=[{"type": "acme", "options": {"tag": "x"}}]) as t:
        t.track_start("claude", "code", "hi")
        assert t.flush()
        assert t.query()[0].metadata == {"acme": "x"}
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "plugins", "list"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "acme" in out and "acme-plugin 1.2.0" in out and "cache" in out


def test_shutdown_is_bounded_by_a_hanging_plugin(tmp_path: Path) -> None:
    class HangsOnShutdown(Plugin):
        name = "hangs"
        gate = threading.Event()

        def shutdown(self) -> None:
            self.gate.wait()

    t = _telemetry(tmp_path, plugin_timeout_s=0.2).use(HangsOnShutdown())
    t.track_start("claude", "code", "hi")
    started = time.monotonic()
    assert t.shutdown()
    HangsOnShutdown.gate.set()
    assert time.monotonic() - started < 30  # bounded, not forever (a generous bound, not a benchmark)


def test_plugins_run_in_a_forked_child(tmp_path: Path) -> None:
    plugin = Tagger()
    t = _telemetry(tmp_path).use(plugin)
    t.track_start("claude", "code", "parent")
    assert t.flush()  # the plugin's thread is running in the parent now
    pid = os.fork()
    if pid == 0:
        try:
            t.track_start("claude", "code", "child")
            code = 0 if t.flush(10) else 3
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    events = t.query()
    assert sorted(e.label or "" for e in events) == ["child", "parent"]
    assert all(e.metadata and e.metadata["tagged"] for e in events)  # the child's plugin ran too
    t.shutdown()


def test_a_refused_plugin_leaves_no_runtime_running(tmp_path: Path) -> None:
    from vibekit_telemetry import lifecycle

    before = set(map(id, lifecycle._exit_flushed))  # runtimes that still flush at exit (not shut down)

    class BadSettings(Plugin):
        name = "bad-settings"

        def initialize(self, telemetry: Any) -> None:
            raise ValidationError("bad-settings.level", "a level from 1 to 3", 7)

    with pytest.raises(ValidationError, match="bad-settings"):
        _telemetry(tmp_path, plugins=[BadSettings()])
    with pytest.raises(ValidationError, match="no-such-plugin"):
        _telemetry(tmp_path, plugins=["no-such-plugin"])
    assert set(map(id, lifecycle._exit_flushed)) <= before
