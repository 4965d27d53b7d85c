"""The usage client as a CLI tool runs it: consent on a real terminal, opt-outs, the exit deadline, the queue."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from usage_support import Counting, hanging_endpoint

from vibekit_telemetry import Telemetry
from vibekit_telemetry.errors import ValidationError
from vibekit_telemetry.server import ServerHandle, start_api_server
from vibekit_telemetry.usage import OPT_OUT_ID, PENDING_ID, UsageTelemetry, env_var, sanitize_options

TOOL_SCRIPT = textwrap.dedent("""
    import os, sys
    from vibekit_telemetry.usage import UsageTelemetry

    usage = UsageTelemetry(tool="vibe-tools", version="1.4.0", endpoint=sys.argv[1], home=sys.argv[2],
                           allowed_options={"debug", "model"}, keep_values={"model"})
    if sys.argv[3] == "consent":
        print("ENABLED", usage.ensure_consent(), flush=True)
    else:
        with usage.command(sys.argv[3], options={"debug": True, "model": "m", "query": "secret"}) as cmd:
            cmd.update(provider="openai", model="gpt-x", prompt_tokens=10, completion_tokens=5)
    print("DONE", flush=True)
""")


@pytest.fixture
def counting() -> Iterator[Counting]:
    endpoint = Counting()
    yield endpoint
    endpoint.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Telemetry, ServerHandle]]:
    telemetry = Telemetry(db_path=str(tmp_path / "server.db"), stream_flush_interval_ms=5)
    handle = start_api_server(telemetry, port=0)
    yield telemetry, handle
    handle.stop()
    telemetry.shutdown()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DO_NOT_TRACK", "VIBE_TOOLS_NO_TELEMETRY")}
    return {**env, **extra}


def _run_tool(tmp_path: Path, endpoint: str, command: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "tool.py"
    script.write_text(TOOL_SCRIPT)
    # A generous bound: a tool that waited on the endpoint would hang for as long as it holds the connection.
    return subprocess.run([sys.executable, str(script), endpoint, str(tmp_path / "home"), command],
                          capture_output=True, text=True, timeout=60, env=_env(**env), stdin=subprocess.DEVNULL)


def _usage_events(telemetry: Telemetry) -> list[dict[str, object]]:
    telemetry.flush()
    return [e.metadata["usage"] for e in telemetry.query(category="usage") if e.metadata]


def _wait_for(predicate, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


# -- consent -------------------------------------------------------------------------------------------

def _answer_on_terminal(tmp_path: Path, endpoint: str, answer: bytes) -> str:
    """Run the tool's consent step on a pseudo terminal, type `answer`, return what it printed."""
    script = tmp_path / "tool.py"
    script.write_text(TOOL_SCRIPT)
    pid, fd = pty.fork()
    if pid == 0:  # the child: a tool started from an interactive terminal
        os.execve(sys.executable, [sys.executable, str(script), endpoint, str(tmp_path / "home"), "consent"],
                  _env())
    out = b""
    try:
        while b"[Y/n]" not in out:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"no prompt on the terminal; got {out!r}"
            out += os.read(fd, 4096)
        os.write(fd, answer)
        while b"DONE" not in out:
            ready, _, _ = select.select([fd], [], [], 30)
            assert ready, f"the tool did not finish; got {out!r}"
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    return out.decode()


def test_consent_asked_once_on_a_terminal_and_remembered(tmp_path: Path, counting: Counting) -> None:
    out = _answer_on_terminal(tmp_path, counting.url, b"n\n")
    assert "never collects your queries, prompts" in out and "VIBE_TOOLS_NO_TELEMETRY=1" in out
    assert "ENABLED False" in out
    stored = json.loads((tmp_path / "home" / ".vibe-tools" / "diagnostics.json").read_text())
    assert stored == {"userId": OPT_OUT_ID, "telemetryEnabled": False}
    # Remembered: a later run does not ask, and sends nothing.
    result = _run_tool(tmp_path, counting.url, "plan")
    assert result.returncode == 0 and "DONE" in result.stdout
    assert counting.requests == []


def test_consent_yes_gives_an_anonymous_uuid(tmp_path: Path, counting: Counting) -> None:
    assert "ENABLED True" in _answer_on_terminal(tmp_path, counting.url, b"y\n")
    stored = json.loads((tmp_path / "home" / ".vibe-tools" / "diagnostics.json").read_text())
    assert stored["telemetryEnabled"] is True and len(stored["userId"]) == 36
    assert _run_tool(tmp_path, counting.url, "plan").returncode == 0
    assert _wait_for(lambda: len(counting.requests) == 1)
    data = counting.requests[0]["data"]
    assert data["userId"] == stored["userId"]
    assert data["options"] == {"debug": True, "model": "m"}  # `query` is not whitelisted


def test_non_interactive_run_stays_pending(tmp_path: Path, counting: Counting) -> None:
    result = _run_tool(tmp_path, counting.url, "consent")
    assert "ENABLED True" in result.stdout  # pending: reported under the placeholder id (send_when_pending)
    assert not (tmp_path / "home" / ".vibe-tools" / "diagnostics.json").exists()  # asked on a later terminal run
    _run_tool(tmp_path, counting.url, "plan")
    assert _wait_for(lambda: len(counting.requests) == 1)
    assert counting.requests[0]["data"]["userId"] == PENDING_ID


def test_pending_sends_nothing_when_the_tool_says_so(tmp_path: Path, counting: Counting) -> None:
    usage = UsageTelemetry("quiet-tool", "1", counting.url, home=tmp_path, send_when_pending=False, environ={})
    with open(os.devnull) as stdin, open(os.devnull, "w") as stdout:
        assert usage.ensure_consent(stdin=stdin, stdout=stdout) is False
    with usage.command("run"):
        pass
    assert usage.close(5) and counting.requests == []


@pytest.mark.parametrize("variable", ["VIBE_TOOLS_NO_TELEMETRY", "DO_NOT_TRACK"])
def test_env_opt_out_sends_no_request_at_all(tmp_path: Path, counting: Counting, variable: str) -> None:
    home = tmp_path / "home" / ".vibe-tools"
    home.mkdir(parents=True)
    (home / "diagnostics.json").write_text(json.dumps({"userId": "u", "telemetryEnabled": True}))
    for command in ("consent", "plan", "repo"):
        result = _run_tool(tmp_path, counting.url, command, **{variable: "1"})
        assert result.returncode == 0, result.stderr
    time.sleep(0.3)  # a background send, had one started, would have arrived by now
    assert counting.requests == []
    queue = home / "telemetry-queue"
    assert not queue.exists() or not list(queue.glob("*"))  # nothing even queued for later


def test_env_var_name() -> None:
    assert env_var("vibe-tools") == "VIBE_TOOLS_NO_TELEMETRY"
    assert env_var("my.tool 2") == "MY_TOOL_2_NO_TELEMETRY"


# -- sending, deadline, queue ----------------------------------------------------------------------------

def test_payload_reaches_the_server_and_is_stored(tmp_path: Path, api: tuple[Telemetry, ServerHandle]) -> None:
    telemetry, handle = api
    usage = UsageTelemetry("vibe-tools", "1.4.0", f"{handle.url}/api/pipeline", home=tmp_path,
                           allowed_options={"debug", "saveTo", "model", "provider"}, keep_values={"model"},
                           environ={})
    usage.set_enabled(True)
    args = argparse.Namespace(debug=True, saveTo="/home/me/notes.md", model="gemini-2.5-pro", query="my secret")
    with pytest.raises(KeyError), usage.command("plan", options=args) as cmd:
        cmd.update(provider="gemini", model="gemini-2.5-pro", prompt_tokens=1200, completion_tokens=300)
        raise KeyError("/home/me/private path")
    assert usage.close(10)
    (data,) = _usage_events(telemetry)
    assert set(data) == {"eventName", "userId", "sessionId", "timestamp", "toolVersion", "command", "duration",
                         "promptTokens", "completionTokens", "provider", "model", "options", "hasError",
                         "errorType"}
    assert data["eventName"] == "command_error" and data["hasError"] is True and data["errorType"] == "KeyError"
    assert data["options"] == {"debug": True, "saveTo": True, "model": "gemini-2.5-pro"}
    assert "private path" not in json.dumps(data) and "my secret" not in json.dumps(data)


def test_exit_is_not_held_by_a_hanging_endpoint_and_the_queue_drains_next_run(
        tmp_path: Path, api: tuple[Telemetry, ServerHandle]) -> None:
    telemetry, handle = api
    with hanging_endpoint() as endpoint:
        result = _run_tool(tmp_path, endpoint, "plan")  # would hang for the whole test if exit waited
        assert result.returncode == 0 and "DONE" in result.stdout
    queued = list((tmp_path / "home" / ".vibe-tools" / "telemetry-queue").glob("*.json"))
    assert len(queued) == 1 and json.loads(queued[0].read_text())["data"]["command"] == "plan"
    # The next run, with the endpoint up, sends its own payload and the one left over.
    result = _run_tool(tmp_path, f"{handle.url}/api/pipeline", "repo")
    assert result.returncode == 0
    assert _wait_for(lambda: sorted(d["command"] for d in _usage_events(telemetry)) == ["plan", "repo"])
    assert list((tmp_path / "home" / ".vibe-tools" / "telemetry-queue").glob("*.json")) == []


def test_queue_is_bounded(tmp_path: Path) -> None:
    with hanging_endpoint() as endpoint:
        usage = UsageTelemetry("t", "1", endpoint, home=tmp_path, max_queued=3, deadline_s=0, environ={})
        usage.set_enabled(True)
        for i in range(6):
            usage.track_event("command_executed", {"command": f"c{i}"})
        queued = sorted((tmp_path / ".t" / "telemetry-queue").glob("*.json"))
        assert [json.loads(p.read_text())["data"]["command"] for p in queued] == ["c3", "c4", "c5"]


def test_resent_payload_is_stored_once(tmp_path: Path, api: tuple[Telemetry, ServerHandle]) -> None:
    telemetry, handle = api
    usage = UsageTelemetry("t", "1", f"{handle.url}/api/pipeline", home=tmp_path, environ={})
    usage.set_enabled(True)
    sent = usage.track_event("command_executed", {"command": "x"})
    assert usage.close(10)
    usage.outbox.put(sent)  # as if the first send's answer was lost and the payload stayed queued
    usage.sender.kick()
    assert usage.close(10)
    assert len(_usage_events(telemetry)) == 1


# -- options ------------------------------------------------------------------------------------------

def test_sanitize_options() -> None:
    options = {"debug": True, "saveTo": "/home/me/x.md", "model": "o3", "quiet": False, "maxTokens": 500,
               "provider": None, "files": ["a", "b"], "apiKey": "sk-secret"}
    assert sanitize_options(options, {"debug", "saveTo", "model", "quiet", "maxTokens", "provider", "files"},
                            keep_values={"model"}) == {"debug": True, "saveTo": True, "model": "o3",
                                                       "maxTokens": 500, "files": True}
    assert sanitize_options(argparse.Namespace(debug=True, other=1), {"debug"}) == {"debug": True}
    with pytest.raises(TypeError, match="options"):
        sanitize_options(42, {"debug"})


def test_bad_arguments_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="endpoint"):
        UsageTelemetry("t", "1", "ftp://x", home=tmp_path)
    with pytest.raises(ValidationError, match="deadline_s"):
        UsageTelemetry("t", "1", "http://127.0.0.1:9/", home=tmp_path, deadline_s=-1)
    usage = UsageTelemetry("t", "1", "http://127.0.0.1:9/", home=tmp_path)
    with pytest.raises(ValidationError, match="tokens"):
        usage.start_command("x").update(tokens=5)


def test_the_client_import_stays_light() -> None:
    # A CLI tool imports this on every run: the standard library only, no store, server or lake.
    code = ("import sys, vibekit_telemetry.usage; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'fastapi', 'duckdb', 'fsspec', "
            "'pydantic', 'httpx', 'pyarrow'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_sys_exit_zero_is_not_an_error(tmp_path: Path, counting: Counting) -> None:
    usage = UsageTelemetry("t", "1", counting.url, home=tmp_path, environ={})
    usage.set_enabled(True)
    for code in (0, 3):
        with pytest.raises(SystemExit), usage.command(f"exit-{code}"):
            raise SystemExit(code)
    assert usage.close(10)
    assert _wait_for(lambda: len(counting.requests) == 2)
    by_command = {r["data"]["command"]: r["data"] for r in counting.requests}
    assert by_command["exit-0"]["hasError"] is False
    assert by_command["exit-3"]["errorType"] == "SystemExit"
