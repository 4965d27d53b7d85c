"""Anonymous usage telemetry for command-line tools (seed 004): the client, payload and sanitiser.

`from vibekit_telemetry.usage import UsageTelemetry` loads only the standard library; the batcher
(fsspec) and the lake (DuckDB) are imported from their own modules when used.
"""

from __future__ import annotations

from .client import TELEMETRY_DATA_DESCRIPTION, CommandState, UsageTelemetry
from .consent import OPT_OUT_ID, PENDING_ID, env_var
from .options import sanitize_options
from .payload import FIELDS, validate_payload

__all__ = ["FIELDS", "OPT_OUT_ID", "PENDING_ID", "TELEMETRY_DATA_DESCRIPTION", "CommandState", "UsageTelemetry",
           "env_var", "sanitize_options", "validate_payload"]
