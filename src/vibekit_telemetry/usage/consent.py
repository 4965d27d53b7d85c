"""Consent and the anonymous user id, kept in `~/.<tool>/diagnostics.json`; opt-out by environment."""

from __future__ import annotations

import json
import os
import re
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, TextIO

OPT_OUT_ID: Final = "anonymous_opt_out"
PENDING_ID: Final = "anonymous_pending_prompt"
Decision = Literal["enabled", "disabled", "pending"]


def env_var(tool: str) -> str:
    """Return the tool's opt-out variable: `vibe-tools` -> `VIBE_TOOLS_NO_TELEMETRY`."""
    return re.sub(r"[^A-Z0-9]+", "_", tool.upper()).strip("_") + "_NO_TELEMETRY"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def env_opt_out(tool: str, environ: Mapping[str, str] | None = None) -> bool:
    """True when `<TOOL>_NO_TELEMETRY` or `DO_NOT_TRACK` is set to a true value."""
    env = os.environ if environ is None else environ
    return _truthy(env.get(env_var(tool))) or _truthy(env.get("DO_NOT_TRACK"))


class Diagnostics:
    """The diagnostics file: `{"userId": ..., "telemetryEnabled": true|false}` (absent: not asked yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Any]:
        """Return the stored answer; a missing or unreadable file is an empty one (ask again)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def decision(self) -> Decision:
        """Return what the user chose, or pending when they were never asked."""
        enabled = self.read().get("telemetryEnabled")
        return "pending" if not isinstance(enabled, bool) else ("enabled" if enabled else "disabled")

    def user_id(self) -> str:
        """Return the anonymous id when enabled, else the placeholder for the decision."""
        data = self.read()
        decision = self.decision()
        if decision == "disabled":
            return OPT_OUT_ID
        if decision == "pending":
            return PENDING_ID
        uid = data.get("userId")
        if isinstance(uid, str) and uid and uid not in (OPT_OUT_ID, PENDING_ID):
            return uid
        return self.save(True)

    def save(self, enabled: bool) -> str:
        """Store the answer (a fresh random UUID when enabled, the opt-out placeholder otherwise); return the id."""
        uid = str(uuid.uuid4()) if enabled else OPT_OUT_ID
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"userId": uid, "telemetryEnabled": enabled}, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)  # never a half-written file, even if the tool is killed here
        return uid


def ask(question: str, stdin: TextIO | None = None, stdout: TextIO | None = None,
        is_interactive: Callable[[], bool] | None = None) -> bool | None:
    """Ask a yes/no question on a terminal; None when not interactive (no answer is assumed)."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    interactive = is_interactive() if is_interactive else _isatty(stdin) and _isatty(stdout)
    if not interactive:
        return None
    stdout.write(question + " [Y/n] ")
    stdout.flush()
    answer = stdin.readline()
    if not answer:  # end of input: no answer
        return None
    return answer.strip().lower() in ("", "y", "yes")


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
