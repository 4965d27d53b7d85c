"""UsageTelemetry: anonymous usage reporting for a command-line tool (seed 004's client)."""

from __future__ import annotations

import atexit
import time
import uuid
import weakref
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from ..errors import ValidationError
from .consent import PENDING_ID, Diagnostics, ask, env_opt_out, env_var
from .options import sanitize_options
from .outbox import Outbox, Sender
from .payload import iso_now

TELEMETRY_DATA_DESCRIPTION: Final = """\
{tool} collects anonymous usage data to improve the tool:
  - the command run, how long it took, and whether it failed (the error's type only)
  - token counts, and the AI provider and model used
  - which command-line options were used (their values only for {kept})
  - the tool's version, an anonymous random id, and a random id per run
It never collects your queries, prompts, file contents, code, personal data or API keys.
Turn it off with {env}=1 (or DO_NOT_TRACK=1)."""

# Fields of update_command_state and their payload names (seed 004's CommandState).
STATE_FIELDS: Final = {"context_tokens": "contextTokens", "prompt_tokens": "promptTokens",
                       "completion_tokens": "completionTokens", "provider": "provider", "model": "model",
                       "file_provider": "fileProvider", "file_model": "fileModel",
                       "thinking_provider": "thinkingProvider", "thinking_model": "thinkingModel"}


@dataclass
class CommandState:
    """One running command: what end_command() reports."""

    command: str
    options: dict[str, Any]
    started: float = field(default_factory=time.monotonic)
    values: dict[str, Any] = field(default_factory=dict)
    error_type: str | None = None
    error_message: str | None = None  # kept on the machine: messages can hold paths and user text

    def update(self, **values: Any) -> None:
        """Record token counts, provider and model (snake_case or the payload's camelCase names)."""
        for key, value in values.items():
            name = STATE_FIELDS.get(key, key if key in STATE_FIELDS.values() else None)
            if name is None:
                raise ValidationError(key, "one of " + ", ".join(STATE_FIELDS), value)
            self.values[name] = value


class UsageTelemetry:
    """Anonymous usage reporting for one CLI tool.

    Args:
        tool: the tool's name (`vibe-tools`): names the diagnostics folder and the opt-out variable.
        version: the tool's version, sent as toolVersion.
        endpoint: the ingestion URL (`https://…/api/pipeline`).
        allowed_options: option keys that may be reported; every other option is left out.
        keep_values: allowed options whose string values are reported (others report `true`).
        deadline_s: the longest the tool's exit waits for sending (default 0.3 s); the rest is queued on disk.
        home: where `.<tool>/` lives (default: the user's home).
        send_when_pending: report (with the `anonymous_pending_prompt` id) before the user was asked.
        max_queued: payloads kept on disk while the endpoint cannot be reached.
        environ: the environment to read opt-outs from (default os.environ).
    """

    def __init__(self, tool: str, version: str, endpoint: str, *, allowed_options: Collection[str] = (),
                 keep_values: Collection[str] = (), deadline_s: float = 0.3, home: str | Path | None = None,
                 send_when_pending: bool = True, max_queued: int = 100, timeout_s: float = 5.0,
                 environ: Mapping[str, str] | None = None) -> None:
        if not isinstance(tool, str) or not tool.strip() or "/" in tool:
            raise ValidationError("tool", "the tool's name, e.g. vibe-tools", tool)
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ValidationError("endpoint", "an http:// or https:// URL", endpoint)
        if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float) or deadline_s < 0:
            raise ValidationError("deadline_s", "a number of seconds >= 0", deadline_s)
        self.tool, self.version, self.endpoint = tool, version, endpoint
        self.allowed_options, self.keep_values = frozenset(allowed_options), frozenset(keep_values)
        self.deadline_s, self.send_when_pending, self.environ = float(deadline_s), send_when_pending, environ
        folder = Path(home if home is not None else Path.home()) / f".{tool}"
        self.diagnostics = Diagnostics(folder / "diagnostics.json")
        self.outbox = Outbox(folder / "telemetry-queue", max_queued)
        self.sender = Sender(self.outbox, endpoint, timeout_s)
        self.session_id = str(uuid.uuid4())  # one per run of the tool
        self.current: CommandState | None = None
        self._exit_hooked = False

    # -- consent ---------------------------------------------------------------------------------

    @property
    def env_var(self) -> str:
        """The opt-out variable of this tool, e.g. VIBE_TOOLS_NO_TELEMETRY."""
        return env_var(self.tool)

    @property
    def enabled(self) -> bool:
        """Whether anything is sent: not opted out by environment or answer (pending: send_when_pending)."""
        if env_opt_out(self.tool, self.environ):
            return False
        decision = self.diagnostics.decision()
        return decision == "enabled" or (decision == "pending" and self.send_when_pending)

    def ensure_consent(self, *, stdin: TextIO | None = None, stdout: TextIO | None = None) -> bool:
        """Ask once on an interactive terminal and remember the answer; return whether reporting is on.

        Never asks when opted out by environment or already answered; without a terminal the
        decision stays pending (asked on a later interactive run).
        """
        if env_opt_out(self.tool, self.environ):
            return False
        if self.diagnostics.decision() == "pending":
            answer = ask(f"{self.description()}\n\nShare anonymous usage data with the {self.tool} authors?",
                         stdin, stdout)
            if answer is not None:
                self.diagnostics.save(answer)
        return self.enabled

    def set_enabled(self, enabled: bool) -> None:
        """Record the user's choice (e.g. from `tool telemetry on|off`)."""
        self.diagnostics.save(enabled)

    def description(self) -> str:
        """Return TELEMETRY_DATA_DESCRIPTION for this tool, for users to read."""
        kept = ", ".join(sorted(self.keep_values)) or "none"
        return TELEMETRY_DATA_DESCRIPTION.format(tool=self.tool, kept=kept, env=self.env_var)

    # -- seed 004's calls ------------------------------------------------------------------------

    def start_command(self, command: str, options: Any = None) -> CommandState:
        """Begin a command; options (a dict or argparse.Namespace) are sanitised right away."""
        self.current = CommandState(command, sanitize_options(options, self.allowed_options, self.keep_values))
        return self.current

    def update_command_state(self, **values: Any) -> None:
        """Add token counts, provider and model to the running command."""
        if self.current is not None:
            self.current.update(**values)

    def record_error(self, error: BaseException) -> None:
        """Record the running command's error (its type is reported, its message stays on the machine)."""
        if self.current is not None:
            self.current.error_type = type(error).__name__
            self.current.error_message = str(error)

    def end_command(self) -> dict[str, Any] | None:
        """Finish the running command and report it; return the payload (None when nothing is sent)."""
        state, self.current = self.current, None
        if state is None:
            return None
        properties: dict[str, Any] = {"command": state.command,
                                      "duration": round((time.monotonic() - state.started) * 1000, 3),
                                      **state.values, "options": state.options,
                                      "hasError": state.error_type is not None}
        if state.error_type is not None:
            properties["errorType"] = state.error_type
        name = "command_error" if state.error_type else "command_executed"
        return self.track_event(name, properties)

    def track_event(self, event_name: str, properties: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Queue one payload on disk and send it in the background; None (and nothing written) when off."""
        if not self.enabled:
            return None
        uid = self.diagnostics.user_id()
        if uid == PENDING_ID and not self.send_when_pending:
            return None
        data = {"eventName": event_name, "userId": uid, "sessionId": self.session_id, "timestamp": iso_now(),
                "toolVersion": self.version, **(properties or {})}
        payload = {"data": data}
        try:
            self.outbox.put(payload)
        except OSError:  # a read-only home must not break the tool
            return None
        self._hook_exit()
        self.sender.kick()
        return payload

    @contextmanager
    def command(self, name: str, options: Any = None) -> Iterator[CommandState]:
        """start_command … end_command around a block; an exception is recorded and re-raised."""
        state = self.start_command(name, options)
        try:
            yield state
        except BaseException as exc:
            # sys.exit(0) and exit() end a command that worked; any other exit or exception is its error.
            if not (isinstance(exc, SystemExit) and exc.code in (0, None)):
                self.record_error(exc)
            raise
        finally:
            self.end_command()

    # -- exit ------------------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Wait for sending at most `timeout` (default deadline_s); return whether all was sent."""
        return self.sender.wait(self.deadline_s if timeout is None else timeout)

    def _hook_exit(self) -> None:
        if not self._exit_hooked:
            self._exit_hooked = True
            ref = weakref.ref(self)
            atexit.register(lambda: (lambda me: me.close() if me is not None else None)(ref()))
