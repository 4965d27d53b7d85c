"""Owner-only files: a new database file is created 0600 and a new directory for it 0700.

Only what this package creates is restricted: an existing directory (the project's, the home
directory) keeps its mode. SQLite creates the -wal and -shm files with the database file's mode.
"""

from __future__ import annotations

import os
from typing import Final

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700


def create_private_database(path: str) -> None:
    """Create the missing directories of path (0700) and an empty database file (0600) if there is none."""
    directory = os.path.dirname(os.path.abspath(path))
    missing = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        directory = os.path.dirname(directory)
    for new in reversed(missing):
        try:
            os.mkdir(new, DIR_MODE)
        except FileExistsError:  # another process made it meanwhile
            continue
        os.chmod(new, DIR_MODE)  # mkdir's mode is masked by the umask
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, FILE_MODE)
