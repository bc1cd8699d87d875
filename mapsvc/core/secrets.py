"""Secrets kept in files under the var folder: made once at random, read back after.

The service ships no default secret. What it needs and was not given (the session key, the
demo accounts' password) it makes at first start and keeps readable by its owner only
(mode 0600), so a restart, a second worker and the CLI find the same value.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def stored_secret(path: str | os.PathLike[str], nbytes: int = 32) -> tuple[str, bool]:
    """The secret kept in ``path``, made (``nbytes`` random bytes, URL-safe) when missing.

    Returns
    -------
    tuple
        ``(secret, created)``: ``created`` is true when this call made the file.

    The file is created with ``O_EXCL`` and mode 0600, so two processes starting at once
    agree on one value and nobody else can read it.
    """
    target = Path(path)
    if target.exists():
        value = target.read_text(encoding="utf-8").strip()
        if value:
            return value, False
        target.unlink()  # an empty file (a crash while writing) holds no secret
    target.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return target.read_text(encoding="utf-8").strip(), False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    os.chmod(target, 0o600)
    return value, True
