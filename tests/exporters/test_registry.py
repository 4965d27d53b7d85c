"""Stores and exporters by type name: registered in-process, or installed as entry points."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _exporter_helpers import event, wait_for

from vibekit_telemetry import registry
from vibekit_telemetry.config import load_config
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.events import TelemetryEvent
from vibekit_telemetry.exporters import BaseExporter, ExporterSet
from vibekit_telemetry.store import MemoryStore
from vibekit_telemetry.store.factory import build_providers


class ListExporter(BaseExporter):
    """Keeps what it receives: an in-process destination of the test's own."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.got: list[TelemetryEvent] = []

    def export(self, events: list[TelemetryEvent]) -> None:
        """Keep the batch."""
        self.got += events


def test_a_registered_exporter_type_is_built_from_config() -> None:
    made: list[ListExporter] = []

    def factory(options: dict[str, Any], field: str) -> ListExporter:
        if "name" not in options:
            raise ValidationError(f"{field}.name", "a name")
        made.append(ListExporter(options["name"]))
        return made[-1]

    registry.register_exporter("list", factory)
    try:
        assert registry.known_types()["list"] == "exporter"
        config = load_config(storage=[{"type": "memory"}, {"type": "list", "options": {"name": "mine"}}])
        store = build_providers(config)[0]
        assert isinstance(store, MemoryStore)
        exporters = ExporterSet.from_config(config, store)
        exporters.start()
        batch = [event(), event()]
        store.store_batch(batch)
        exporters.notify()
        assert wait_for(lambda: len(made[0].got) == 2)
        assert exporters.shutdown(timeout=5)
        assert [e.event_id for e in made[0].got] == [e.event_id for e in batch]
        with pytest.raises(ValidationError) as info:
            ExporterSet.from_config(load_config(storage=[{"type": "list"}]), None)
        assert info.value.field == "storage[0].options.name"
    finally:
        registry.unregister("list")
    with pytest.raises(ValidationError):
        registry.kind_of("list")


def test_a_factory_returning_the_wrong_kind_is_named() -> None:
    registry.register_exporter("broken", lambda options, field: object())
    try:
        with pytest.raises(ValidationError) as info:
            registry.build("broken", {}, field="storage[3]")
        assert info.value.field == "storage[3].type" and "exporter" in str(info.value)
    finally:
        registry.unregister("broken")


PLUGIN = '''
import json
from vibekit_telemetry.store import MemoryStore


class JsonLines:
    """Appends each event as one JSON line to a file."""

    batch_size = 100

    def __init__(self, path):
        self.name = "jsonl:" + path
        self.path = path

    def export(self, events):
        with open(self.path, "a", encoding="utf-8") as out:
            out.writelines(json.dumps(e.to_dict()) + "\\n" for e in events)

    def shutdown(self):
        pass


def build_jsonl(options, field):
    return JsonLines(options["path"])


build_jsonl.kind = "exporter"


def build_kept(options, field):
    return MemoryStore()
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution (a real .dist-info on sys.path) declaring two entry points."""
    site = tmp_path / "site"
    info = site / "vk_plugin_demo-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "vk_plugin_demo.py").write_text(textwrap.dedent(PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vk-plugin-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[vibekit_telemetry.providers]\njsonl = vk_plugin_demo:build_jsonl\nkept = vk_plugin_demo:build_kept\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_entry_points", None)  # read the installed packages again


@pytest.mark.usefixtures("installed_plugin")
def test_entry_point_providers_are_found_by_type_name(tmp_path: Path) -> None:
    assert registry.known_types()["jsonl"] == "exporter" and registry.known_types()["kept"] == "store"
    out = tmp_path / "events.jsonl"
    config = load_config(storage=[{"type": "kept"}, {"type": "jsonl", "options": {"path": str(out)}}])
    [store] = build_providers(config)
    assert isinstance(store, MemoryStore)
    exporters = ExporterSet.from_config(config, store)
    exporters.start()
    batch = [event(), event(), event()]
    store.store_batch(batch)
    exporters.notify()
    assert wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3)
    assert exporters.shutdown(timeout=5)
    assert [json.loads(line)["event_id"] for line in out.read_text().splitlines()] == [e.event_id for e in batch]
