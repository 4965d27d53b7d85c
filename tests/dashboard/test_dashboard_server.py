"""The dashboard's server side on real servers: page and assets, downloads, info, the CLI, the demo workload."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from dashboard_support import Serve

from vibekit_telemetry import Telemetry
from vibekit_telemetry.dashboard.demo import LiveWorkload
from vibekit_telemetry.events import now_ms
from vibekit_telemetry.query import QueryFilter, SessionFilter
from vibekit_telemetry.server import start_api_server

KEY = "dashboard-key-0123456789"


def _seed(telemetry: Telemetry) -> list[str]:
    ids = []
    for n, agent in enumerate(("claude", "claude", "codex")):
        sid = telemetry.track_start(agent, "code", f"prompt {n}")
        telemetry.track_stream(sid, f"chunk, with a comma {n}")
        telemetry.track_end(sid, "error" if agent == "codex" else "completed")
        ids.append(sid)
    assert telemetry.flush(timeout=30)
    return ids


def test_page_and_assets_carry_their_own_strict_csp(serve: Serve) -> None:
    server = serve()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for path in ("/", "/dashboard"):
            root = http.get(path, follow_redirects=False)
            assert root.status_code == 307 and root.headers["location"] == "/dashboard/"
        page = http.get("/dashboard/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp  # nothing from elsewhere, nothing inline
        assert '<script src="app.js"' in page.text
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            asset = http.get(f"/dashboard/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        # The assets reference no other host (the SVG namespace is a name, not a fetch): it works offline.
        for name in ("index.html", "app.js", "style.css"):
            text = (http.get("/dashboard/") if name == "index.html" else http.get(f"/dashboard/{name}")).text
            assert not re.search(r"https?://|//cdn", text.replace("http://www.w3.org/2000/svg", "")), name
        assert http.get("/dashboard/..%2Fapp.py").status_code == 404
        missing = http.get("/dashboard/nothing.js")
        assert missing.status_code == 404 and "nothing.js" in missing.json()["message"]
        # The API keeps its own CSP.
        assert http.get("/api/stats").headers["content-security-policy"].startswith("default-src 'none'")


def test_without_the_dashboard_option_the_server_serves_no_page(telemetry: Telemetry) -> None:
    with start_api_server(telemetry, port=0) as server:
        assert httpx.get(server.url + "/dashboard/", timeout=10).status_code == 404


def test_downloads_follow_the_filter_in_csv_and_json(telemetry: Telemetry, serve: Serve) -> None:
    ids = _seed(telemetry)
    server = serve()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        res = http.get("/api/dashboard/download", params={"what": "sessions", "format": "csv", "category": "claude"})
        assert res.status_code == 200 and res.headers["content-type"].startswith("text/csv")
        assert 'filename="sessions.csv"' in res.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(res.text)))
        assert [r["id"] for r in rows] == ids[1::-1]  # newest first, as on screen
        assert {r["status"] for r in rows} == {"completed"}
        # Sessions in the page's sort order, as JSON: the export's document with "sessions" for "events".
        doc = http.get("/api/dashboard/download", params={"what": "sessions", "format": "json", "sort": "duration",
                                                          "order": "asc"}).json()
        durations = [s["duration"] for s in doc["sessions"]]
        assert durations == sorted(durations) and doc["counts"] == {"sessions": 3}
        assert doc["export"]["table"] == "sessions" and doc["export"]["filter"]["sort_by"] == "duration"

        res = http.get("/api/dashboard/download", params={"what": "events", "format": "csv", "session_id": ids[0]})
        rows = list(csv.DictReader(io.StringIO(res.text)))
        assert [r["event_type"] for r in rows] == ["end", "stream", "start"]  # newest first, as on screen
        assert rows[1]["stream_data"] == "chunk, with a comma 0"

        doc = http.get("/api/dashboard/download", params={"what": "events", "format": "json",
                                                          "event_type": "stream"}).json()
        assert sorted(e["session_id"] for e in doc["events"]) == sorted(ids) and doc["counts"] == {"events": 3}
        assert http.get("/api/dashboard/download", params={"what": "events", "format": "json",
                                                          "category": "nobody"}).json()["events"] == []
        limited = http.get("/api/dashboard/download", params={"what": "events", "format": "json", "limit": 2})
        assert len(limited.json()["events"]) == 2


def test_a_download_is_what_telemetry_export_writes(telemetry: Telemetry, serve: Serve, tmp_path: Path) -> None:
    # The dashboard's download goes through export/ (the writers of `telemetry export`): the same filter
    # in the same order gives the same bytes, and the JSON imports back with `telemetry import`.
    from vibekit_telemetry.export.exports import export_events

    ids = _seed(telemetry)
    server = serve()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        downloaded = http.get("/api/dashboard/download", params={
            "what": "events", "format": "csv", "category": "claude", "order": "asc"}).content
        doc = http.get("/api/dashboard/download", params={"what": "events", "format": "json", "order": "asc"}).json()
    export_events(telemetry.store, "csv", output_path=str(tmp_path / "e.csv"), filter={"category": "claude"})
    assert downloaded == (tmp_path / "e.csv").read_bytes()
    (tmp_path / "e.json").write_text(json.dumps(doc))
    copy = Telemetry(db_path=str(tmp_path / "copy.db"))
    try:
        copy.import_file(str(tmp_path / "e.json"))
        assert copy.flush(timeout=30)
        assert {s.id for s in copy.store.get_sessions(SessionFilter())} == set(ids)
        assert len(copy.store.query(QueryFilter())) == 9
    finally:
        copy.shutdown()


def test_sessions_api_sorts_every_session_by_duration_events_or_errors(telemetry: Telemetry, serve: Serve) -> None:
    base = 1_700_000_000_000
    # Session n lasts n*10 ms, has n stream chunks and n % 3 errors; s0 still runs (no duration).
    for n in range(7):
        sid = telemetry.track_start("claude", "code", f"prompt {n}", timestamp=base + n, session_id=f"s{n}")
        for k in range(n):
            telemetry.track_stream(sid, f"chunk {k}", timestamp=base + n + k)
        for _ in range(n % 3):
            telemetry.track_error(sid, "boom", timestamp=base + n + 1)
        if n:
            telemetry.track_end(sid, "completed", timestamp=base + n + n * 10)
    assert telemetry.flush(timeout=30)
    server = serve()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        def ids(**params: object) -> list[str]:
            res = http.get("/api/sessions", params=params)  # type: ignore[arg-type]
            assert res.status_code == 200, res.text
            return [s["id"] for s in res.json()["sessions"]]

        assert ids(sort="duration", order="desc") == ["s6", "s5", "s4", "s3", "s2", "s1", "s0"]
        assert ids(sort="duration", order="asc", limit=3) == ["s0", "s1", "s2"]
        assert ids(sort="duration", order="asc", limit=3, offset=3) == ["s3", "s4", "s5"]  # pages of one order
        assert ids(sort="event_count", limit=3) == ["s5", "s6", "s4"]  # 9, 8, 7 events
        assert ids(sort="error_count", limit=4) == ["s5", "s2", "s4", "s1"]  # 2 errors, then 1; ties newest first
        body = http.get("/api/sessions", params={"sort": "errors"}).json()
        assert (body["sort"], body["order"]) == ("error_count", "desc")
        for params, field in (({"sort": "size"}, "sort"), ({"order": "sideways"}, "order")):
            bad = http.get("/api/sessions", params=params)
            assert bad.status_code == 400, bad.text
            details = bad.json()["details"]
            assert [d["field"] for d in details] == [field]
        assert all(k in bad.text for k in ("asc", "desc"))
        message = http.get("/api/sessions", params={"sort": "size"}).json()["details"][0]["message"]
        assert all(k in message for k in ("start_time", "duration", "event_count", "error_count")), message


def test_a_download_the_client_abandons_stops_its_export(telemetry: Telemetry, serve: Serve) -> None:
    # ~20 MB of JSON: more than the socket buffers and the export's queue hold, so the writer is still at
    # work when the client goes; it must stop then, not write on (or wait out its stall limit) for nobody.
    base = now_ms() - 60_000
    for chunk in range(0, 6000, 2000):
        telemetry.track_batch([{"event_type": "start", "session_id": f"s{n}", "category": "claude",
                                "label": f"prompt {n} " + "x" * 3000, "timestamp": base + n}
                               for n in range(chunk, chunk + 2000)])
    assert telemetry.flush(timeout=60)
    server = serve()

    def writers() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name == "vibekit-events-download"]

    with httpx.Client(base_url=server.url, timeout=30) as http, \
            http.stream("GET", "/api/dashboard/download", params={"what": "events", "format": "json"}) as res:
        assert res.status_code == 200
        assert next(res.iter_raw()).startswith(b'{"export": ')
        assert writers()  # still writing: the download is far from done
    deadline = time.monotonic() + 30
    while writers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not writers(), "the export kept running after its client disconnected"


@pytest.mark.parametrize(("params", "field"), [
    ({"what": "rows"}, "what"), ({"format": "xml"}, "format"), ({"since": "not a time"}, "since"),
    ({"what": "events", "status": "error"}, "status"), ({"what": "sessions", "contains": "x"}, "contains"),
    ({"limit": 0}, "limit"), ({"colour": "red"}, "colour"), ({"what": "sessions", "sort": "size"}, "sort"),
    ({"what": "events", "sort": "duration"}, "sort"), ({"order": "sideways"}, "order"),
])
def test_bad_download_requests_name_the_field(serve: Serve, params: dict[str, object], field: str) -> None:
    server = serve()
    res = httpx.get(server.url + "/api/dashboard/download", params=params, timeout=10)  # type: ignore[arg-type]
    assert res.status_code == 400, res.text
    body = res.json()
    assert any(field in (d.get("field") or "") for d in body["details"]), body


def test_auth_guards_data_not_the_page(telemetry: Telemetry, serve: Serve) -> None:
    _seed(telemetry)
    server = serve(api_keys=[KEY])
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.get("/dashboard/").status_code == 200  # the page holds no data: it asks for a key
        for path in ("/api/dashboard/download", "/api/dashboard/info", "/api/sessions"):
            assert http.get(path).status_code == 401
        info = http.get("/api/dashboard/info", headers={"X-API-Key": KEY}).json()
        assert info["auth"] is True and info["version"]
        assert info["retention"] and info["retention"][0]["store"] == "sqlite"
        assert http.get("/api/dashboard/download", headers={"X-API-Key": KEY}).status_code == 200


def test_batched_and_single_subscribers_each_receive_every_event_once_in_order(telemetry: Telemetry,
                                                                              serve: Serve) -> None:
    from websockets.sync.client import connect

    # Correctness, not speed: the buffer holds the whole burst, so threads reading slowly lose nothing.
    server = serve(stream_buffer=5000)
    url = server.url.replace("http://", "ws://")
    total = 3000
    dropped: list[dict[str, object]] = []
    stack = contextlib.ExitStack()
    sockets = [stack.enter_context(connect(url + "/ws?batch=true")) for _ in range(20)] + \
        [stack.enter_context(connect(url + "/ws"))]
    received: list[list[str]] = [[] for _ in sockets]

    def read(index: int) -> None:
        ws = sockets[index]
        ws.recv(timeout=10)  # connected
        while len(received[index]) < total:
            message = json.loads(ws.recv(timeout=30))
            for item in message["messages"] if message["type"] == "batch" else [message]:
                if item["type"] == "event":
                    received[index].append(item["event"]["label"])
                if item["type"] == "dropped":
                    dropped.append(item)
                    return

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(sockets))]
    for reader in readers:
        reader.start()
    while server.app.state.hub.stats()["subscribers"] < len(sockets):
        time.sleep(0.01)
    expected = [f"e{n}" for n in range(total)]
    for start in range(0, total, 500):
        telemetry.track_batch([{"event_type": "custom", "category": "fan", "label": label}
                               for label in expected[start:start + 500]])
    for reader in readers:
        reader.join(60)
    stack.close()
    assert not dropped
    assert all(labels == expected for labels in received)
    assert server.app.state.hub.dropped_total() == 0


def test_live_workload_records_sessions_and_ends_them_on_stop(telemetry: Telemetry) -> None:
    with LiveWorkload(telemetry, concurrency=3, tick_s=0.01, seed=7) as workload:
        deadline = time.monotonic() + 30
        while workload.sessions_started < 8 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert telemetry.flush(timeout=30)
    sessions = telemetry.get_sessions(limit=1000)
    assert len(sessions) == workload.sessions_started >= 8
    assert all(s.status in ("completed", "error") for s in sessions)  # none left running
    assert {s.category for s in sessions} <= {"claude", "codex", "gemini", "opencode", "grok"}
    assert len(telemetry.query(limit=100_000)) == workload.events
    assert sum(s.event_count for s in sessions) == workload.events
    for bad in ({"concurrency": 0}, {"tick_s": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LiveWorkload(telemetry, **bad)  # type: ignore[arg-type]


def _cli(*args: str, db: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "vibekit_telemetry.cli", "--db", str(db), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def test_telemetry_dashboard_demo_serves_live_agents_until_ctrl_c(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    process = _cli("dashboard", "--demo", "--port", "0", "--no-open", db=db)
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard/", line)
    try:
        assert match, line
        url = match.group(1)
        assert "live demo workload running" in line
        deadline = time.monotonic() + 60
        sessions: list[dict[str, object]] = []
        while time.monotonic() < deadline and len(sessions) < 5:
            with contextlib.suppress(httpx.TransportError):
                sessions = httpx.get(url + "/api/sessions", timeout=5).json()["sessions"]
            time.sleep(0.2)
        assert len(sessions) >= 5
        assert httpx.get(url + "/dashboard/", timeout=5).status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    with Telemetry(db_path=str(db)) as check:
        assert check.get_sessions(status="active") == []  # the demo ended what it started
        assert check.get_stats().total_sessions >= 5


def test_dashboard_commands_and_aliases_answer_help(tmp_path: Path) -> None:
    for args in (("dashboard", "--help"), ):
        out = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", *args], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0 and "--demo" in out.stdout and "--no-open" in out.stdout
    code = "from vibekit_telemetry.cli import vibekit; vibekit(['dashboard', '--help'], prog_name='vibekit')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--demo" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "vibekit_telemetry.cli", "dashboard", "--port", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--port" in bad.stderr
