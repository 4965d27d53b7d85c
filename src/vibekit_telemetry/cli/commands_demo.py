"""`demo`: a simulated multi-agent workload written through the real SDK pipeline."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..events import now_ms
from .context import TelemetryCommand, database_label, open_telemetry
from .options import console, database_options, echo_json, format_option

AGENTS: Final = (("claude", 40), ("codex", 25), ("gemini", 15), ("opencode", 12), ("grok", 8))
MODES: Final = (("code", 55), ("chat", 30), ("ask", 15))
MODELS: Final = {"claude": "claude-sonnet-4", "codex": "gpt-5-codex", "gemini": "gemini-2.5-pro",
                 "opencode": "qwen3-coder", "grok": "grok-code-fast"}
PROMPTS: Final = (
    "Fix the failing test in tests/test_parser.py",
    "Explain what this regular expression matches",
    "Add type hints to utils/io.py",
    "Why does the build fail on Python 3.12?",
    "Write a migration that adds an index on users.email",
    "Refactor the retry loop into a decorator",
    "Summarise the open pull requests",
    "Port this shell script to Python",
    "Find the memory leak in the websocket handler",
    "Generate docstrings for the public API",
)
CHUNKS: Final = (
    "Let me look at the relevant files first.",
    "I found the issue: the loop exits one iteration early.",
    "Here is the updated function:\n```python\ndef parse(text):\n    ...\n```",
    "Running the tests now.",
    "All 42 tests pass.",
    "The regular expression matches ISO dates with an optional time part.",
    "I added an index and a downgrade step.",
    "Done. Summary of the changes follows.",
)
ERRORS: Final = ("API rate limit exceeded", "Sandbox timed out after 300s",
                 "Tool call failed: file not found", "Context window exceeded", "Connection reset by peer")
DAY_MS: Final = 86_400_000


@dataclass
class DemoSummary:
    """What one demo run wrote."""

    sessions: int = 0
    events: int = 0
    errors: int = 0
    failed_sessions: int = 0
    agents: dict[str, int] = field(default_factory=dict)


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*choices, strict=True)
    return str(rng.choices(names, weights=weights)[0])


def simulate_session(telemetry: Any, rng: random.Random, start_ms: int, summary: DemoSummary) -> None:
    """Record one simulated agent session (start, stream chunks, maybe errors, end) from start_ms on."""
    agent, mode = _weighted(rng, AGENTS), _weighted(rng, MODES)
    now = start_ms
    sid = telemetry.track_start(
        agent, mode, rng.choice(PROMPTS), timestamp=now,
        sandbox_id=f"sbx-{rng.randrange(16**6):06x}" if mode == "code" else None,
        repo_url=f"https://github.com/example/{rng.choice(['api', 'web', 'cli', 'infra'])}"
        if mode == "code" else None,
        metadata={"model": MODELS[agent], "demo": True, "priority": rng.choice(["low", "normal", "high"])})
    summary.sessions += 1
    summary.events += 1
    summary.agents[agent] = summary.agents.get(agent, 0) + 1
    failed = False
    for chunk in range(rng.randint(2, 12)):
        now += rng.randint(200, 15_000)
        telemetry.track_stream(sid, rng.choice(CHUNKS), timestamp=now, metadata={"chunk": chunk + 1})
        summary.events += 1
        if rng.random() < 0.03:
            now += rng.randint(100, 2000)
            telemetry.track_error(sid, rng.choice(ERRORS), timestamp=now)
            summary.events += 1
            summary.errors += 1
            if rng.random() < 0.6:
                failed = True
                break
    now += rng.randint(100, 5000)
    telemetry.track_end(sid, "error" if failed else "completed", timestamp=now,
                        duration=float(now - start_ms),
                        metadata={"tokens": rng.randint(300, 40_000)})
    summary.events += 1
    summary.failed_sessions += failed


@click.command(cls=TelemetryCommand)
@click.option("--sessions", "count", type=click.IntRange(min=1, max=1_000_000), default=25, show_default=True,
              help="How many agent sessions to simulate.")
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable workload.")
@click.option("--days", type=click.FloatRange(min=0.01, max=3650), default=3.0, show_default=True,
              help="Spread session start times over this many past days.")
@format_option(("table", "json"))
@database_options
def demo(count: int, seed: int | None, days: float, fmt: str) -> None:
    """Simulate agents (claude, codex, gemini, opencode, grok) running sessions, through the SDK."""
    rng = random.Random(seed)
    end = now_ms() - 60_000
    span = int(days * DAY_MS)
    starts = sorted(end - rng.randint(0, span) for _ in range(count))
    summary = DemoSummary()
    progress = Progress(TextColumn("[bold]Simulating sessions"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console(stderr=True), transient=True,
                        disable=fmt == "json")
    with open_telemetry(must_exist=False, service_name="telemetry-demo") as telemetry:
        with progress:
            task = progress.add_task("demo", total=count)
            for start in starts:
                # A session never runs into the future: it is squeezed to end before `end`.
                simulate_session(telemetry, rng, min(start, end - 600_000), summary)
                progress.advance(task)
        if not telemetry.flush(timeout=60):
            raise click.ClickException("timed out writing the demo events")
        health = telemetry.get_health_status()
    dropped = int(health.get("dropped_total", 0) or 0)
    if dropped:
        raise click.ClickException(f"{dropped} demo events were dropped: {health.get('last_error')}")
    agents = ", ".join(f"{name} {n}" for name, n in sorted(summary.agents.items(), key=lambda kv: -kv[1]))
    if fmt == "json":
        echo_json({"database": database_label(), "sessions": summary.sessions, "events": summary.events,
                   "errors": summary.errors, "failed_sessions": summary.failed_sessions,
                   "agents": summary.agents})
        return
    click.echo(f"Recorded {summary.sessions} sessions, {summary.events} events ({summary.errors} errors, "
               f"{summary.failed_sessions} failed sessions) in {database_label()}: {agents}.")
