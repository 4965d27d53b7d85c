"""`dashboard`: serve the API with the web dashboard on the selected database, optionally with a live demo."""

from __future__ import annotations

import os
import sys
import webbrowser
from typing import Any

import click

from .context import TelemetryCommand, _config, database_label, open_telemetry
from .options import console, database_options

# A live view wants events on screen within a moment of track(): the writer commits (and so publishes)
# every 100 ms instead of the SDK's 1,000 ms, unless the user configured an interval of their own.
LIVE_FLUSH_MS = 100
SDK_DEFAULT_FLUSH_MS = 1000


def can_open_browser() -> bool:
    """Return whether a graphical browser can open here."""
    # Without a display, webbrowser would start a text browser (lynx, w3m) in the server's terminal.
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or
                                                        os.environ.get("WAYLAND_DISPLAY"))


@click.command(cls=TelemetryCommand)
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on (0: any free port) [default: 3000, or api.port in the config].")
@click.option("--host", default=None, help="Address to bind [default: 127.0.0.1].")
@click.option("--demo", is_flag=True, help="Run a live simulated multi-agent workload, so there is something "
                                           "to watch.")
@click.option("--open/--no-open", "open_browser", default=True, show_default=True,
              help="Open the dashboard in the default browser once the server listens.")
@click.option("--auth/--no-auth", default=None,
              help="Require an API key (the dashboard asks for it) [env TELEMETRY_AUTH_ENABLED].")
@click.option("--api-key", "api_keys", multiple=True, metavar="KEY[:SCOPES]",
              help="Accept this X-API-Key (repeatable) [env TELEMETRY_API_KEYS].")
@click.option("--dashboard-port", type=int, default=None, hidden=True,
              help="Accepted for seed 002's `vibekit dashboard --dashboard-port`; one port serves both.")
@click.option("--no-build", is_flag=True, hidden=True, help="Accepted for seed 002: the dashboard ships built.")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="warning", show_default=True)
@database_options
def dashboard(port: int | None, host: str | None, demo: bool, open_browser: bool, auth: bool | None,
              api_keys: tuple[str, ...], dashboard_port: int | None, no_build: bool, log_level: str) -> None:
    """Open the live web dashboard: overview, live feed, sessions, analytics and health.

    \b
    Examples:
      telemetry dashboard                      # the embedded store, opens the browser
      telemetry dashboard --demo               # with simulated agents working live
      telemetry dashboard --port 4000 --no-open
    Stop with Ctrl-C: pending events are written before the server exits.
    """
    try:
        from ..dashboard.demo import LiveWorkload
        from ..server.runner import run_api_server
        from ..server.settings import ServerSettings
    except ImportError as exc:
        raise click.ClickException(f"the dashboard needs the server extra: pip install "
                                   f"'vibekit-telemetry[server]' ({exc.name} is missing)") from None
    err = console(stderr=True)
    options: dict[str, Any] = {"auth": auth, "api_keys": list(api_keys) or None}
    extra: dict[str, Any] = {}
    if _config().stream_flush_interval_ms == SDK_DEFAULT_FLUSH_MS:
        extra["stream_flush_interval_ms"] = LIVE_FLUSH_MS
    with open_telemetry(must_exist=False, raise_on_error=False, **extra) as telemetry:
        config = telemetry.config.api
        settings = ServerSettings.resolve(config, **{k: v for k, v in options.items() if v is not None})
        workload = LiveWorkload(telemetry) if demo else None

        def ready(url: str) -> None:
            page = f"{url}/dashboard/"
            err.print(f"Dashboard for [bold]{database_label()}[/] at [bold]{page}[/] (auth "
                      f"{'on' if settings.auth_enabled else 'off'}"
                      f"{', live demo workload running' if workload else ''}); Ctrl-C to stop")
            if workload is not None:
                workload.start()
            if open_browser and can_open_browser():
                webbrowser.open(page, new=2)  # best effort: the URL is printed above either way
            elif open_browser:
                err.print("[dim]no display here: open the URL above in a browser[/]")

        try:
            run_api_server(telemetry, port if port is not None else config.port,
                           host if host is not None else config.host, settings=settings,
                           log_level=log_level, access_log=log_level in ("info", "debug"), on_ready=ready,
                           dashboard=True)
        finally:
            if workload is not None:
                workload.stop()
