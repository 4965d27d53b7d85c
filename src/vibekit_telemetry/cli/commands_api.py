"""`api`: serve the REST API, batch ingest and live streams on the selected database."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import click
from rich.markup import escape

from ..errors import StoreError, ValidationError
from .context import (
    TelemetryCommand,
    database_label,
    get_state,
    open_telemetry,
    sqlite_file,
    unknown_options_printed_here,
)
from .options import console, database_options

ENV_GRPC_PORT = "TELEMETRY_GRPC_PORT"
ENV_TLS_CERT = "TELEMETRY_TLS_CERT"
ENV_TLS_KEY = "TELEMETRY_TLS_KEY"
ENV_GRPC_TLS_CERT = "TELEMETRY_GRPC_TLS_CERT"
ENV_GRPC_TLS_KEY = "TELEMETRY_GRPC_TLS_KEY"


@click.command(cls=TelemetryCommand)
@click.option("--port", "-p", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on (0: any free port) [default: 3000, or api.port in the config].")
@click.option("--host", default=None,
              help="Address to bind [default: 127.0.0.1; 0.0.0.0 for every interface].")
@click.option("--auth/--no-auth", default=None,
              help="Require an API key or bearer token [env TELEMETRY_AUTH_ENABLED; on with keys].")
@click.option("--api-key", "api_keys", multiple=True, metavar="KEY[:SCOPES]",
              help="Accept this X-API-Key (repeatable); SCOPES like ingest+read [env TELEMETRY_API_KEYS].")
@click.option("--bearer-token", "bearer_tokens", multiple=True, metavar="TOKEN[:SCOPES]",
              help="Accept this bearer token (repeatable) [env TELEMETRY_BEARER_TOKENS].")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Allow browser calls from this origin (repeatable) [env TELEMETRY_ALLOWED_ORIGINS].")
@click.option("--rate-limit", type=click.Choice(["default", "strict", "off"]), default=None,
              help="default: 600 read + 6,000 ingest requests/min per client; strict: 100 per 15 min.")
@click.option("--redis-url", metavar="URL", default=None,
              help="Share rate limits between replicas through Redis [env TELEMETRY_REDIS_URL].")
@click.option("--max-body-mb", type=click.FloatRange(0.001, 1024), default=None,
              help="Largest request body accepted [default: 10].")
@click.option("--trust-proxy", "trusted_proxies", multiple=True, metavar="CIDR",
              help="Believe X-Forwarded-For/-Proto only from this proxy address or network (repeatable).")
@click.option("--otlp-grpc", "otlp_grpc", is_flag=True,
              help="Also receive OTLP/gRPC traces (port 4317; --otlp-grpc-port). OTLP/HTTP is always at /v1/traces.")
@click.option("--otlp-grpc-port", type=click.IntRange(0, 65535), default=4317, show_default=True,
              help="Port of the OTLP/gRPC receiver.")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=None, envvar=ENV_GRPC_PORT,
              help="Also serve the gRPC TelemetryStream service (live events, batch ingest) on this port "
                   "(0: any free port) [env TELEMETRY_GRPC_PORT, or api.grpc_port in the config].")
@click.option("--tls-cert", metavar="FILE", default=None, envvar=ENV_TLS_CERT,
              help="Serve the HTTP API (and dashboard, WebSocket, SSE) over HTTPS only, with this PEM "
                   "certificate chain; needs --tls-key [env TELEMETRY_TLS_CERT, or api.tls_cert].")
@click.option("--tls-key", metavar="FILE", default=None, envvar=ENV_TLS_KEY,
              help="The PEM private key of --tls-cert [env TELEMETRY_TLS_KEY, or api.tls_key].")
@click.option("--grpc-tls-cert", metavar="FILE", default=None, envvar=ENV_GRPC_TLS_CERT,
              help="Serve the gRPC servers (--grpc-port, --otlp-grpc) over TLS with this PEM certificate chain; "
                   "needs --grpc-tls-key [env TELEMETRY_GRPC_TLS_CERT, or api.grpc_tls_cert].")
@click.option("--grpc-tls-key", metavar="FILE", default=None, envvar=ENV_GRPC_TLS_KEY,
              help="The PEM private key of --grpc-tls-cert [env TELEMETRY_GRPC_TLS_KEY, or api.grpc_tls_key].")
@click.option("--pipeline", metavar="DEST", default=None,
              help="Batch POST /api/pipeline usage payloads into DEST: a directory or s3://bucket/prefix.")
@click.option("--pipeline-option", "pipeline_options", multiple=True, metavar="KEY=VALUE",
              help="Batching (max_rows, max_bytes, max_age_s, compress, spool_dir) or fsspec option "
                   "(endpoint_url=…) of --pipeline (repeatable).")
@click.option("--dashboard", is_flag=True, help="Also serve the web dashboard at /dashboard/.")
@click.option("--writer-process/--no-writer-process", default=None,
              help="Commit in a process of its own, beside the one answering requests [default: on for "
                   "SQLite; env TELEMETRY_WRITER_PROCESS, or writer_process in the config].")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True)
@database_options
def api(port: int | None, host: str | None, auth: bool | None, api_keys: tuple[str, ...],
        bearer_tokens: tuple[str, ...], cors_origins: tuple[str, ...], rate_limit: str | None,
        redis_url: str | None, max_body_mb: float | None, trusted_proxies: tuple[str, ...], otlp_grpc: bool,
        otlp_grpc_port: int, grpc_port: int | None, tls_cert: str | None, tls_key: str | None,
        grpc_tls_cert: str | None, grpc_tls_key: str | None, pipeline: str | None,
        pipeline_options: tuple[str, ...], dashboard: bool, writer_process: bool | None, log_level: str) -> None:
    """Serve the HTTP API: events, sessions, stats, live streams (/ws, /api/stream), /metrics.

    \b
    Examples:
      telemetry api --port 3000
      telemetry api --port 3000 --auth --api-key "$KEY"
      telemetry api --port 443 --host 0.0.0.0 --tls-cert server.pem --tls-key server.key
      telemetry api --port 3000 --grpc-port 50051
      telemetry api --grpc-port 50051 --grpc-tls-cert server.pem --grpc-tls-key server.key
      curl -H "X-API-Key: $KEY" 'localhost:3000/api/events?category=claude&limit=10'
    Stop with Ctrl-C: pending events are written before the server exits.
    """
    try:  # the server extra, checked before anything opens
        from ..server import runner, settings  # noqa: F401
    except ImportError as exc:
        raise click.ClickException(f"the API server needs the server extra: pip install "
                                   f"'vibekit-telemetry[server]' ({exc.name} is missing)") from None
    options: dict[str, Any] = {"auth": auth, "api_keys": list(api_keys) or None,
                               "bearer_tokens": list(bearer_tokens) or None,
                               "cors_origins": list(cors_origins) or None, "rate_limit": rate_limit,
                               "redis_url": redis_url, "trusted_proxies": list(trusted_proxies) or None}
    if max_body_mb is not None:
        options["max_body_bytes"] = int(max_body_mb * 1024 * 1024)
    err = console(stderr=True)
    # The server's pipeline never raises into request handlers: bad events are answered with 400
    # before they are queued, and the writer counts anything the store refuses.
    extra: dict[str, Any] = {}
    if pipeline is not None:
        from ..usage.batcher import pipeline_storage

        extra["storage"] = pipeline_storage(get_state().config_kwargs(), pipeline, pipeline_options)
    # Unknown options are printed once among the start-up lines below, not logged by each load of the config.
    with unknown_options_printed_here():
        extra["writer_process"] = _writer_process(writer_process)
        with open_telemetry(must_exist=False, raise_on_error=False, **extra) as telemetry:
            _print_unknown_options(err)
            _serve(telemetry, settings_options=options, port=port, host=host, otlp_grpc=otlp_grpc,
                   otlp_grpc_port=otlp_grpc_port, grpc_port=grpc_port, tls_cert=tls_cert, tls_key=tls_key,
                   grpc_tls_cert=grpc_tls_cert, grpc_tls_key=grpc_tls_key, dashboard=dashboard,
                   log_level=log_level)


def _writer_process(flag: bool | None) -> bool:
    """The flag, else the config's writer_process, else on for SQLite: its commits then leave the loop's GIL."""
    if flag is not None:
        return flag
    from ..config import load_config
    from ..store.factory import primary_store

    config = load_config(**get_state().config_kwargs())  # loaded once here, for both questions
    if config.writer_process is not None:
        return config.writer_process
    try:
        return sqlite_file(primary_store(config)) is not None
    except StoreError:
        return False  # no queryable store: opening the Telemetry says so


def _print_unknown_options(err: Any) -> None:
    """Print each unknown option of the config file or environment with the closest known one."""
    from ..config import unknown_config_options

    unknown = unknown_config_options(get_state().config)
    for option in unknown:
        err.print(f"[yellow]warning:[/yellow] {escape(option.message())} (ignored)")
    if unknown:
        err.print("[yellow]warning:[/yellow] `telemetry config check` shows every option and where it came from")


def _serve(telemetry: Any, *, settings_options: dict[str, Any], port: int | None, host: str | None,
           otlp_grpc: bool, otlp_grpc_port: int, grpc_port: int | None, tls_cert: str | None,
           tls_key: str | None, grpc_tls_cert: str | None, grpc_tls_key: str | None, dashboard: bool,
           log_level: str) -> None:
    """Start the gRPC servers asked for, then serve HTTP until stopped; stop them all after."""
    from ..server.runner import run_api_server
    from ..server.settings import ServerSettings

    err = console(stderr=True)
    config = telemetry.config.api
    settings = ServerSettings.resolve(config, **{k: v for k, v in settings_options.items() if v is not None})

    def ready(url: str) -> None:
        err.print(f"Serving [bold]{database_label()}[/] at [bold]{url}[/] (docs {url}/docs, auth "
                  f"{'on' if settings.auth_enabled else 'off'}"
                  f"{f', dashboard {url}/dashboard/' if dashboard else ''}); Ctrl-C to stop")

    stream_port = grpc_port if grpc_port is not None else config.grpc_port
    http_tls = _tls_pair(tls_cert, tls_key, (config.tls_cert, config.tls_key), "tls")
    tls = _tls_pair(grpc_tls_cert, grpc_tls_key, (config.grpc_tls_cert, config.grpc_tls_key), "grpc_tls")
    if tls is not None and stream_port is None and not otlp_grpc:
        err.print("[yellow]warning:[/yellow] --grpc-tls-cert/--grpc-tls-key have no effect without "
                  "--grpc-port or --otlp-grpc (the HTTP API's are --tls-cert/--tls-key)")
    bind = host or config.host
    # The gRPC servers are stopped (last started first) when the HTTP API stops or fails to start.
    with ExitStack() as servers:
        if otlp_grpc:
            receiver = _start_grpc(servers, _otlp_server_class(), "OTLP/gRPC", telemetry, settings, bind,
                                   otlp_grpc_port, tls)
            err.print(f"OTLP/gRPC receiver at [bold]{receiver.endpoint}[/] ({_tls_label(tls)})")
        if stream_port is not None:
            stream = _start_grpc(servers, _stream_server_class(), "gRPC", telemetry, settings, bind, stream_port,
                                 tls)
            err.print(f"gRPC TelemetryStream at [bold]{stream.target}[/] ({_tls_label(tls)})")
        run_api_server(telemetry, port if port is not None else config.port,
                       host if host is not None else config.host, settings=settings, log_level=log_level,
                       access_log=log_level in ("info", "debug"), on_ready=ready, tls=http_tls,
                       dashboard=dashboard)


def _tls_pair(cert: str | None, key: str | None, configured: tuple[str | None, str | None], name: str) -> Any:
    """A TLS pair (name: "tls" for HTTP, "grpc_tls"): options (or their env) over the `api` section's pair.

    Errors name the option (--tls-key, api.grpc_tls_cert …).
    """
    from ..server.tls import load_tls_pair

    # A pair comes whole from one place: an option given on the command line is not completed from the file.
    from_cli = cert is not None or key is not None
    flag = "--" + name.replace("_", "-")
    names = (f"{flag}-cert", f"{flag}-key") if from_cli else (f"api.{name}_cert", f"api.{name}_key")
    if not from_cli:
        cert, key = configured
    try:
        return load_tls_pair(cert, key, cert_field=names[0], key_field=names[1])
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None


def _start_grpc(servers: ExitStack, server_class: Any, what: str, telemetry: Any, settings: Any, host: str,
                port: int, tls: Any) -> Any:
    """Start a gRPC server beside the HTTP API, to be stopped with it; a port in use is an error naming it."""
    try:
        server = server_class(telemetry, port, host, settings=settings, tls=tls).start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot listen for {what} on {host}:{port} ({exc})") from None
    servers.callback(server.stop)
    return server


def _tls_label(tls: Any) -> str:
    return f"TLS, certificate {tls.cert_path}" if tls is not None else "plaintext"


def _stream_server_class() -> Any:
    """The gRPC TelemetryStream server class, or an error naming the grpc extra."""
    try:
        from ..streaming.grpc_service import GrpcStreamServer, load_proto

        load_proto()
    except (ImportError, ValidationError) as exc:
        raise click.ClickException(f"--grpc-port needs the grpc extra: pip install 'vibekit-telemetry[grpc]' "
                                   f"({exc})") from None
    return GrpcStreamServer


def _otlp_server_class() -> Any:
    """The OTLP/gRPC receiver class, or an error naming the otlp extra."""
    try:
        from ..otlp.grpc_server import OtlpGrpcServer
    except ImportError as exc:
        raise click.ClickException(f"--otlp-grpc needs the otlp extra: pip install 'vibekit-telemetry[otlp]' "
                                   f"({exc.name} is missing)") from None
    return OtlpGrpcServer
