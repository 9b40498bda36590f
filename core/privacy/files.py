"""Files that hold calls (the database with its WAL, recordings) are private to the
user who runs the app: 0600, in folders made 0700."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700. A folder that already exists is left
    as it is: it may be shared (``/tmp``) or set up by an operator on purpose."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    for made in missing:  # mkdir's mode is filtered by the umask
        os.chmod(made, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner may read it: created 0600; an existing
    file of ours loses its group and other permissions (a read-only file stays read-only)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        info = os.stat(path)
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            os.chmod(path, stat.S_IMODE(info.st_mode) & 0o700)
    return path


__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir", "private_file"]
