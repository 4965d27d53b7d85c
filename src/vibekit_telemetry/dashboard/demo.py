"""A live simulated multi-agent workload: agents start sessions, stream output and finish in real time."""

from __future__ import annotations

import random
import threading
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cli.commands_demo import AGENTS, CHUNKS, ERRORS, MODELS, MODES, PROMPTS

if TYPE_CHECKING:
    from ..service import Telemetry


@dataclass
class _Running:
    session_id: str
    chunks_left: int


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    names, weights = zip(*choices, strict=True)
    return str(rng.choices(names, weights=weights)[0])


class LiveWorkload:
    """Run `concurrency` simulated agent sessions at a time on a daemon thread until stop().

    Args:
        telemetry: where the sessions are recorded (through the normal SDK calls, so the chain runs).
        concurrency: sessions running at once.
        tick_s: how often each running session may emit its next event.
        seed: random seed, for a repeatable workload.
    """

    def __init__(self, telemetry: Telemetry, *, concurrency: int = 6, tick_s: float = 0.25,
                 seed: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency!r}")
        if tick_s <= 0:
            raise ValueError(f"tick_s must be positive, got {tick_s!r}")
        self.telemetry = telemetry
        self.concurrency = concurrency
        self.tick_s = tick_s
        self._rng = random.Random(seed)
        self._running: list[_Running] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sessions_started = 0
        self.events = 0

    def start(self) -> LiveWorkload:
        """Start the workload thread; return self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vibekit-telemetry-demo", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop starting and advancing sessions; the ones running are ended as completed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for running in self._running:
            self.telemetry.track_end(running.session_id, "completed")
            self.events += 1
        self._running.clear()

    def __enter__(self) -> LiveWorkload:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_s * self._rng.uniform(0.5, 1.5)):
            try:
                self.step()
            except Exception:  # the demo must never take the server down with it
                continue

    def step(self) -> None:
        """Advance the workload once: fill free slots with new sessions, let each running one act."""
        rng = self._rng
        while len(self._running) < self.concurrency:
            agent, mode = _weighted(rng, AGENTS), _weighted(rng, MODES)
            sid = self.telemetry.track_start(
                agent, mode, rng.choice(PROMPTS),
                metadata={"model": MODELS[agent], "demo": True, "priority": rng.choice(["low", "normal", "high"])})
            self._running.append(_Running(sid, rng.randint(3, 14)))
            self.sessions_started += 1
            self.events += 1
        for running in list(self._running):
            if rng.random() < 0.4:  # agents think between chunks
                continue
            if running.chunks_left > 0 and rng.random() < 0.015:
                failure = _failure(rng.choice(ERRORS))
                self.telemetry.track_error(running.session_id, failure,
                                           metadata={"stack": "".join(traceback.format_exception(failure))})
                self.events += 1
                if rng.random() < 0.6:
                    self.telemetry.track_end(running.session_id, "error")
                    self._finish(running)
                    self.events += 1
                continue
            if running.chunks_left > 0:
                self.telemetry.track_stream(running.session_id, rng.choice(CHUNKS) + "\n")
                running.chunks_left -= 1
            else:
                self.telemetry.track_end(running.session_id, "completed",
                                         metadata={"tokens": rng.randint(300, 40_000)})
                self._finish(running)
            self.events += 1

    def _finish(self, running: _Running) -> None:
        self._running.remove(running)


def _failure(message: str) -> RuntimeError:
    """A raised-and-caught exception, so the recorded error carries a real stack like an agent's would."""
    try:
        raise RuntimeError(message)
    except RuntimeError as exc:
        return exc
