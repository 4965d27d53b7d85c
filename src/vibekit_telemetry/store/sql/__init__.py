"""The SQL store package: SQLite and PostgreSQL behind one SQLStore.

`store.py` the class (lifecycle, connections, reads), `writer.py` the batch write path, `read.py` the
selects, `maintenance.py` clean/prune/compact/reindex/check, `text_index.py` SQLite's deferred text
index, `changelog.py` and `audit.py` the change log and audit trail (with their SQLStore mixins),
`direct.py` schema versions and ad-hoc SQL without opening the store, `fork.py` the fork hooks, and
`dialect.py` every SQLite / PostgreSQL difference (a Dialect strategy object).
"""

from __future__ import annotations

from .dialect import WRITER_CACHE_KB
from .store import SQLStore, StoreRefusedRow

__all__ = ["WRITER_CACHE_KB", "SQLStore", "StoreRefusedRow"]
