"""Connection pool options of a PostgreSQL store (seed 001's `poolSize`, `idleTimeout`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from ...registry import number_option

POOL_OPTIONS: Final = frozenset({"pool_size", "idle_timeout"})
MAX_POOL_SIZE: Final = 200


@dataclass(frozen=True, slots=True)
class PoolOptions:
    """At most `pool_size` connections per process (the writer's included); idle ones closed after idle_timeout_ms."""

    pool_size: int = 5
    idle_timeout_ms: int | None = None

    @classmethod
    def parse(cls, options: Mapping[str, Any], field: str) -> PoolOptions:
        """Read `pool_size` (2..200) and `idle_timeout` (milliseconds, as the seed spells it) from options."""
        # 2 at least: the writer keeps one connection checked out for good, reads need another.
        size = number_option(options, "pool_size", field, 5, minimum=2, maximum=MAX_POOL_SIZE, integer=True,
                             what="connections per process, the writer's included")
        idle = number_option(options, "idle_timeout", field, None, minimum=0, above=True,
                             what="milliseconds, e.g. 30000")
        return cls(size, None if idle is None else int(idle))

    def engine_kwargs(self) -> dict[str, Any]:
        """create_engine() arguments: a hard cap (no overflow), so replicas x pool_size bounds max_connections."""
        return {"pool_size": self.pool_size, "max_overflow": 0, "pool_timeout": 30}

    def attach(self, engine: Engine) -> None:
        """Close pooled connections that sat idle longer than idle_timeout when they are next checked out."""
        if self.idle_timeout_ms is None:
            return
        limit_s = self.idle_timeout_ms / 1000

        @event.listens_for(engine, "checkin")
        def _checkin(_dbapi: Any, record: Any) -> None:
            record.info["idle_since"] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def _checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
            since = record.info.pop("idle_since", None)
            if since is not None and time.monotonic() - since > limit_s:
                # The pool discards this connection and opens a fresh one: a server-side idle
                # timeout or a load balancer may have cut it already, and it held server memory.
                raise sa_exc.DisconnectionError("idle longer than idle_timeout")
