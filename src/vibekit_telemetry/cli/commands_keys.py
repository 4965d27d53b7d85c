"""`keys generate`: a strong API key, with the `sha256:` form to put in a server's config instead of it."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Final

import click

from .context import TelemetryCommand, TelemetryGroup

# The server's scopes (server/settings.py), repeated so this command does not import the server extra.
SCOPES: Final = ("ingest", "read", "admin")
KEY_PREFIX: Final = "vkt_"
# 32 random bytes: 256 bits, beyond guessing whatever the rate limits are.
KEY_BYTES: Final = 32


def parse_scopes(text: str | None) -> list[str]:
    """Return the scopes of `ingest+read` (or `ingest,read`) in canonical order; BadParameter names a bad one."""
    if text is None or not text.strip():
        return []
    chosen = set()
    for part in text.replace(",", "+").split("+"):
        scope = part.strip().lower()
        if scope not in SCOPES:
            raise click.BadParameter(f"unknown scope {part.strip()!r}: expected {', '.join(SCOPES)} joined by +",
                                     param_hint="--scopes")
        chosen.add(scope)
    return [s for s in SCOPES if s in chosen]


def generate_key() -> str:
    """Return a new random API key (URL-safe, 47 characters)."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hashed_entry(key: str, scopes: list[str]) -> str:
    """Return the `sha256:<hex>[:scopes]` config entry that accepts `key` without storing it."""
    entry = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return entry + (":" + "+".join(scopes) if scopes else "")


@click.group(cls=TelemetryGroup)
def keys() -> None:
    """Make API keys for `telemetry api --auth`."""


@keys.command(cls=TelemetryCommand)
@click.option("--scopes", metavar="SCOPES", default=None,
              help="What the key may do: ingest, read, admin joined by + (e.g. ingest+read) [default: all].")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def generate(scopes: str | None, fmt: str) -> None:
    """Print a new API key and the hashed entry a server config can hold instead of the key.

    \b
    Examples:
      telemetry keys generate --scopes ingest
      telemetry api --auth --api-key "sha256:…:ingest"    # the server never sees the key itself
    """
    chosen = parse_scopes(scopes)
    key = generate_key()
    entry = hashed_entry(key, chosen)
    if fmt == "json":
        click.echo(json.dumps({"key": key, "scopes": chosen or list(SCOPES), "config_entry": entry}))
        return
    click.echo(f"key:          {key}")
    click.echo(f"scopes:       {'+'.join(chosen or SCOPES)}")
    click.echo(f"config entry: {entry}")
    click.echo("Give the key to the client (X-API-Key or Authorization: Bearer); put the config entry in "
               "--api-key, TELEMETRY_API_KEYS or api.auth.api_keys. The key is not shown again.", err=True)
