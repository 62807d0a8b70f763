"""Emptying a data directory (harnesses reuse one between runs)."""

from __future__ import annotations

import shutil
from pathlib import Path


def reset_home(home: Path) -> None:
    """Remove everything the embedded backend keeps in `home`: metadata, warehouse, vault key, token."""
    if not home.exists():
        return
    for entry in home.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
