"""The API server (FastAPI on uvicorn): REST, batch ingest, live streams, auth, CORS, rate limits.

Needs the `server` extra: `pip install 'vibekit-telemetry[server]'`. Nothing here is imported by
`import vibekit_telemetry`.
"""

from __future__ import annotations

from .app import create_app
from .runner import ServerHandle, run_api_server, start_api_server
from .settings import RateLimitSettings, ServerSettings

__all__ = ["RateLimitSettings", "ServerHandle", "ServerSettings", "create_app", "run_api_server",
           "start_api_server"]
