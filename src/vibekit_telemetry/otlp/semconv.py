"""Attribute names (OpenTelemetry GenAI conventions plus vibekit.*) and the deterministic trace and span ids."""

from __future__ import annotations

import hashlib
from typing import Final

# The fields of an event carried as vibekit.<field> attributes, so a round trip restores them exactly.
EVENT_FIELDS: Final = ("event_id", "event_type", "session_id", "category", "action", "label", "value",
                       "stream_data", "sandbox_id", "repo_url", "duration", "service_name", "service_version")
JSON_FIELDS: Final = ("metadata", "context")  # carried as JSON text: OTLP attributes hold no nested maps
PREFIX: Final = "vibekit."
TIMESTAMP_MS: Final = "vibekit.timestamp_ms"

GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_OPERATION: Final = "gen_ai.operation.name"
GEN_AI_AGENT: Final = "gen_ai.agent.name"
GEN_AI_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_CONVERSATION: Final = "gen_ai.conversation.id"
GEN_AI_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
SESSION_ID: Final = "session.id"  # OpenInference's session attribute

# Where token counts and the model are found in an event's metadata, in the names SDKs use.
MODEL_KEYS: Final = ("model", "gen_ai.request.model", "model_name")
INPUT_TOKEN_KEYS: Final = ("input_tokens", "prompt_tokens", "inputTokens", "promptTokens")
OUTPUT_TOKEN_KEYS: Final = ("output_tokens", "completion_tokens", "outputTokens", "completionTokens")

SCOPE_NAME: Final = "vibekit_telemetry"
DEFAULT_SERVICE: Final = "vibekit-telemetry"


def _digest(kind: str, key: str, size: int) -> bytes:
    raw = hashlib.sha256(f"vibekit:{kind}:{key}".encode("utf-8", "surrogatepass")).digest()[:size]
    # An all-zero id is invalid in OTLP; a sha256 prefix of zeros is practically impossible, but be exact.
    return raw if any(raw) else b"\x01" * size


def trace_id(session_id: str) -> bytes:
    """The 16-byte trace id of a session: the same session always maps to the same trace."""
    return _digest("trace", session_id, 16)


def root_span_id(session_id: str) -> bytes:
    """The 8-byte span id of a session's root span."""
    return _digest("session", session_id, 8)


def event_span_id(event_id: str) -> bytes:
    """The 8-byte span id of an event exported as a child span."""
    return _digest("event", event_id, 8)
