"""Errors a user can act on.

The CLI prints these as one line (no traceback); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import re

_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)[^@\s/]*@")


def mask_secrets(text: str) -> str:
    """Text with the password of any ``scheme://user:password@host`` URL replaced by ***."""
    return _URL_PASSWORD.sub(r"\1***@", text)


def without_userinfo(url: str) -> str:
    """A URL without ``user:password@``: what is stored and shown."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)


class FullMajaError(Exception):
    """Base class for errors caused by input, configuration or a remote service. Its text
    never shows a password written into a URL."""

    def __str__(self) -> str:
        return mask_secrets(super().__str__())


class ProductError(FullMajaError):
    """A MAJA product that cannot be read; names the file and what is wrong with it."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = printable_path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):
        # Raised in ingest's worker processes and sent back pickled: without this, unpickling
        # called __init__ with one argument, and the pool was declared broken (every product
        # still converting failed with BrokenProcessPool).
        return (type(self), (self.path, self.problem))

    def reason_within(self, product: object) -> str:
        """The problem, naming the file inside ``product`` it is about (if it is not the
        product itself): what a per-product report line needs."""
        base = printable_path(product)
        if self.path != base and self.path.startswith(base):
            inner = self.path[len(base):].lstrip("/!")
            return f"{inner}: {self.problem}"
        return self.problem


def printable_path(path: object) -> str:
    """A path as text that can always be printed: bytes that are not UTF-8 (a folder name
    from another system) are shown as \\x escapes instead of breaking the output."""
    import os

    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def warn_line(text: str) -> None:
    """A warning the user should act on, as one plain line on stderr (not a Python warning,
    which would also print a source line)."""
    import sys

    print(f"warning: {text}", file=sys.stderr, flush=True)


def writable_folder(path, what: str) -> None:
    """Create ``path`` if needed and prove that a file can be written in it, or raise a
    FullMajaError that names the real cause (a file in the way, no permission, a read-only
    or full disk) before any work starts."""
    import errno
    import tempfile
    from pathlib import Path

    path = Path(path)
    shown = printable_path(path)
    blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is" if blocker == path else f"is beneath {printable_path(blocker)}, which is"
        raise FullMajaError(f"{shown} ({what}) {where} a file, not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        cause = {errno.EACCES: "permission denied", errno.EPERM: "permission denied", errno.EROFS: "read-only file system",
                 errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}.get(exc.errno,
                                                                                                  exc.strerror or str(exc))
        raise FullMajaError(f"cannot write in {shown} ({what}): {cause}") from None
