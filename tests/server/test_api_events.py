"""REST routes against a real server: ingest, query, sessions, stats, metrics, export, delete, health."""

from __future__ import annotations

import json

import httpx
from api_support import start_event, stream_event

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import ServerHandle


def test_ingest_accepts_one_event_a_list_and_an_events_object(client: httpx.Client) -> None:
    one = client.post("/api/events", json=start_event("s1"))
    assert one.status_code == 200
    assert one.json()["accepted"] == 1 and len(one.json()["event_ids"]) == 1
    many = client.post("/api/events", json=[stream_event("s1", "a"), stream_event("s1", "b")])
    assert many.status_code == 200 and many.json()["accepted"] == 2
    wrapped = client.post("/api/events?wait=true", json={"events": [{"type": "end", "sessionId": "s1",
                                                                     "status": "success"}]})
    assert wrapped.status_code == 200 and wrapped.json()["committed"] is True
    session = client.get("/api/sessions/s1").json()
    assert session["status"] == "completed"
    assert session["category"] == "claude" and session["action"] == "code" and session["label"] == "Fix the bug"
    assert [e["event_type"] for e in session["events"]] == ["start", "stream", "stream", "end"]


def test_event_ids_are_returned_and_make_retries_idempotent(client: httpx.Client) -> None:
    first = client.post("/api/events?wait=true", json=[start_event("s2"), stream_event("s2")]).json()
    ids = first["event_ids"]
    events = client.get("/api/events", params={"session_id": "s2"}).json()["events"]
    assert [e["event_id"] for e in events] == ids
    retry = [{**start_event("s2"), "eventId": ids[0]}, {**stream_event("s2"), "event_id": ids[1]}]
    again = client.post("/api/events?wait=true", json=retry).json()
    assert again["event_ids"] == ids
    assert client.get("/api/events", params={"session_id": "s2"}).json()["count"] == 2


def test_start_without_session_id_gets_one(client: httpx.Client) -> None:
    body = client.post("/api/events?wait=true", json={"event_type": "start", "category": "codex"}).json()
    (event_id, session_id), = body["session_ids"].items()
    assert event_id == body["event_ids"][0]
    assert client.get(f"/api/sessions/{session_id}").json()["category"] == "codex"


def test_invalid_batch_lists_every_error_with_its_index_and_stores_nothing(client: httpx.Client) -> None:
    batch = [start_event("ok"), {"event_type": "start", "category": "x", "timestamp": 1700000000},
             "not an object", {"event_type": "stream"}, {"event_type": "start", "category": "x", "bogus": 1}]
    response = client.post("/api/events?wait=true", json=batch)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Validation Error"
    assert "4 of 5" in body["message"]
    fields = [d["field"] for d in body["details"]]
    assert fields == ["events[1].timestamp", "events[2]", "events[3].session_id", "events[4].bogus"]
    assert "seconds" in body["details"][0]["message"]
    assert client.get("/api/events").json()["count"] == 0


def test_single_invalid_event_names_the_field_without_index(client: httpx.Client) -> None:
    response = client.post("/api/events", json={"event_type": "start", "category": "c", "value": "x"})
    assert response.status_code == 400
    assert response.json()["details"] == [{"field": "value", "message": "expected a number, got 'x'"}]


def test_ndjson_accepted_form_content_types_refused(client: httpx.Client) -> None:
    lines = "\n".join(json.dumps(e) for e in (start_event("nd"), stream_event("nd"))) + "\n"
    response = client.post("/api/events?wait=true", content=lines,
                           headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 200 and response.json()["accepted"] == 2
    # `curl -d @batch.json` sends application/x-www-form-urlencoded, which a browser may send cross-site
    # without a preflight: refused, with the header to send instead (issue 7).
    curl_like = client.post("/api/events", content=json.dumps([stream_event("nd")]),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert curl_like.status_code == 415 and "application/json" in curl_like.json()["message"]


def _all_pages(client: httpx.Client, path: str, key: str, params: dict[str, object]) -> list[list[str]]:
    """Every page of a listing, each asked with the next_cursor of the one before."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        body = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})}).json()
        pages.append([row["session_id" if key == "events" else "id"] for row in body[key]])
        if "next_cursor" not in body:
            return pages
        assert "next_offset" not in body or cursor is None  # offsets only on pages asked without a cursor
        cursor = body["next_cursor"]


def test_cursor_pages_of_sessions_and_events(client: httpx.Client) -> None:
    client.post("/api/events?wait=true", json=[start_event(f"c{i}", timestamp=1_700_000_000_000 + i * 1000)
                                               for i in range(7)])
    pages = _all_pages(client, "/api/sessions", "sessions", {"limit": 3})
    assert pages == [["c6", "c5", "c4"], ["c3", "c2", "c1"], ["c0"]]
    by_events = _all_pages(client, "/api/sessions", "sessions", {"limit": 4, "sort": "event_count", "order": "asc"})
    assert [sid for page in by_events for sid in page] == [f"c{i}" for i in range(7)]
    events = _all_pages(client, "/api/events", "events", {"limit": 2, "order": "desc"})
    assert events == [["c6", "c5"], ["c4", "c3"], ["c2", "c1"], ["c0"]]
    first = client.get("/api/sessions", params={"limit": 3}).json()
    assert first["next_offset"] == 3 and first["next_cursor"]  # both ways on (compatible)


def test_a_bad_cursor_answers_400_naming_the_field(client: httpx.Client) -> None:
    client.post("/api/events?wait=true", json=[start_event(f"b{i}") for i in range(3)])
    sessions_cursor = client.get("/api/sessions", params={"limit": 1}).json()["next_cursor"]
    for path, params in (("/api/sessions", {"cursor": "garbage"}), ("/api/events", {"cursor": "garbage"}),
                         ("/api/events", {"cursor": sessions_cursor}),
                         ("/api/sessions", {"cursor": sessions_cursor, "sort": "duration"}),
                         ("/api/sessions", {"cursor": sessions_cursor, "offset": 5}),
                         ("/api/sessions", {"cursor": "x" * 5000})):
        answer = client.get(path, params=params)
        assert answer.status_code == 400, (path, params, answer.text)
        assert [d["field"] for d in answer.json()["details"]] == ["cursor"], answer.json()


def test_query_filters_and_paging(client: httpx.Client) -> None:
    events = [start_event(f"q{i}", "claude" if i % 2 else "gemini", metadata={"model": f"m{i % 3}"})
              for i in range(10)]
    client.post("/api/events?wait=true", json=events)
    claude = client.get("/api/events", params={"category": "claude", "limit": 10}).json()
    assert claude["count"] == 5 and {e["category"] for e in claude["events"]} == {"claude"}
    both = client.get("/api/events", params=[("category", "claude"), ("category", "gemini")]).json()
    assert both["count"] == 10
    page = client.get("/api/events", params={"limit": 3, "offset": 3, "order": "desc"}).json()
    assert page["count"] == 3 and page["next_offset"] == 6
    by_meta = client.get("/api/events", params={"metadata.model": "m0"}).json()
    assert by_meta["count"] == 4
    since = client.get("/api/events", params={"since": "1h", "event_type": "start"}).json()
    assert since["count"] == 10


def test_bad_query_parameters_get_400_with_the_field(client: httpx.Client) -> None:
    for params, field in [({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"),
                          ({"event_type": "nope"}, "event_type"), ({"since": "whenever"}, "since"),
                          ({"colour": "red"}, "colour"), ({"order": "sideways"}, "order")]:
        response = client.get("/api/events", params=params)
        assert response.status_code == 400, params
        body = response.json()
        assert body["error"] == "Validation Error"
        assert body["details"][0]["field"] == field, body


def test_sessions_listing_and_404(client: httpx.Client) -> None:
    client.post("/api/events?wait=true", json=[start_event("a1"), start_event("a2", "codex"),
                                               {"event_type": "error", "session_id": "a2", "error": "boom"}])
    listing = client.get("/api/sessions", params={"category": "codex"}).json()
    assert [s["id"] for s in listing["sessions"]] == ["a2"]
    assert client.get("/api/sessions", params={"with_errors": "true"}).json()["count"] == 1
    no_events = client.get("/api/sessions/a1", params={"with_events": "false"}).json()
    assert "events" not in no_events
    missing = client.get("/api/sessions/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "Not Found"
    bad = client.get("/api/sessions", params={"status": "sleeping"})
    assert bad.status_code == 400 and bad.json()["details"][0]["field"] == "status"


def test_stats_metrics_insights(client: httpx.Client) -> None:
    client.post("/api/events?wait=true", json=[start_event("m1"), start_event("m2", "codex")])
    stats = client.get("/api/stats", params={"group_by": "category"}).json()
    assert stats["total_events"] == 2 and stats["agents"] == {"claude": 1, "codex": 1}
    assert {g["key"] for g in stats["groups"]} == {"claude", "codex"}
    metrics = client.get("/api/metrics").json()
    assert metrics["stats"]["total_sessions"] == 2
    assert metrics["pipeline"]["events"]["written"] >= 2
    assert metrics["streams"]["subscribers"] == 0
    insights = client.get("/api/insights").json()  # the analytics engine answers (issue 10)
    assert insights["available"] is True and insights["metrics"]["events"]["total"] == 2


def test_prometheus_metrics(client: httpx.Client) -> None:
    client.post("/api/events?wait=true", json=[start_event("p1"), stream_event("p1")])
    client.get("/api/events")
    text = client.get("/metrics").text
    assert 'telemetry_events_ingested_total{category="claude",event_type="start"} 1.0' in text
    assert "telemetry_http_events_accepted_total 2.0" in text
    assert "telemetry_queue_depth" in text
    assert 'telemetry_dropped_events_total{reason="queue_full"}' in text
    [flush_count] = [line for line in text.splitlines() if line.startswith("telemetry_flush_duration_seconds_count")]
    assert float(flush_count.split()[-1]) >= 1  # the batch written for ?wait=true was timed
    assert 'telemetry_http_request_duration_seconds_count{method="GET",route="/api/events",status="200"}' in text


def test_health_and_readiness(client: httpx.Client) -> None:
    assert client.get("/health").json()["status"] == "ok"
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": True, "writer": True}
    detail = client.get("/api/health").json()
    assert detail["status"] in ("healthy", "degraded") and "streams" in detail


def test_export_streams_ndjson_and_is_audited(client: httpx.Client, telemetry: Telemetry) -> None:
    client.post("/api/events?wait=true", json=[start_event(f"e{i}") for i in range(5)])
    response = client.get("/api/events/export", params={"category": "claude"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    rows = [json.loads(line) for line in response.text.splitlines()]
    assert len(rows) == 5 and all(r["category"] == "claude" for r in rows)
    entry = telemetry.store.audit_log(1)[0]  # type: ignore[attr-defined]
    assert entry["action"] == "export" and entry["actor"] == "anonymous"


def test_delete_session_and_events(client: httpx.Client, telemetry: Telemetry) -> None:
    client.post("/api/events?wait=true", json=[start_event("d1"), start_event("d2", "codex")])
    assert client.delete("/api/sessions/d1").json() == {"deleted": 1, "session_id": "d1"}
    assert client.get("/api/sessions/d1").status_code == 404
    assert client.delete("/api/sessions/d1").status_code == 404
    assert client.delete("/api/events").status_code == 400
    assert client.delete("/api/events", params={"category": "codex"}).json() == {"deleted": 1}
    actions = [(a["action"], a["target"]) for a in telemetry.store.audit_log(10)]  # type: ignore[attr-defined]
    assert ("delete", "session:d1") in actions and ("delete", "events") in actions


def test_openapi_document_lists_every_route_with_an_operation_id(server: ServerHandle) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"queryEvents", "ingestEvents", "listSessions", "getSession", "getStats", "getMetrics",
            "getInsights", "liveness", "readiness", "prometheusMetrics", "streamEvents"} <= operations
    assert {"ApiKey", "BearerToken"} <= set(spec["components"]["securitySchemes"])
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_wait_parameter_words_and_a_bad_value(client: httpx.Client) -> None:
    # POST /api/events reads `wait` itself (no FastAPI dependency): the same words, the same 400.
    for word, status in (("false", 202), ("no", 202), ("OFF", 202), ("0", 202), ("true", 200), ("1", 200),
                         ("yes", 200)):
        response = client.post(f"/api/events?wait={word}", json={"event_type": "custom", "category": "w"})
        assert response.status_code == status, word
        assert response.json()["committed"] is (status == 200)
    bad = client.post("/api/events?wait=maybe", json={"event_type": "custom", "category": "w"})
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "wait"
    assert client.post("/api/events?wait=maybe&x=1", json={}).json()["details"][0]["field"] == "x"


def test_ingest_route_declares_its_key_and_wait_in_the_openapi_document(server: ServerHandle) -> None:
    operation = httpx.get(f"{server.url}/openapi.json").json()["paths"]["/api/events"]["post"]
    assert operation["security"] == [{"ApiKey": []}, {"BearerToken": []}]
    assert [(p["name"], p["in"], p["schema"]["type"]) for p in operation["parameters"]] == [
        ("wait", "query", "boolean")]
