"""The web dashboard: static assets shipped in the package, served by the API server, and a live demo workload.

Nothing here is imported by `import vibekit_telemetry`; the server imports the router on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
# The URL path the dashboard is served under; `/` redirects here when the dashboard is on.
MOUNT: Final = "/dashboard"

__all__ = ["MOUNT", "STATIC_DIR"]
