"""The one place where a name from outside becomes a path.

Names come from places we do not control: an MTD's PRODUCT_ID and file list, a GEODES
search answer's identifier, the last segment of a PEPS result URL, a job id in a server's
answer, the ids in a catalog's own bookkeeping files (which anyone may edit). Before any of
them is joined to a folder it must pass :func:`safe_name`, and every such join goes through
:func:`within`, which also refuses a result that resolves outside its root (a symbolic link
planted inside the root). ``tests/test_trust_paths.py`` greps the package for joins that
bypass these two.

The rule is deliberately narrow, wider than the MUSCATE grammar (``SENTINEL2A_20190305-
084816-456_L2A_T36TWQ_C_V2-2``) only by what real file names of a product need: ASCII
letters, digits, ``_ - . +``, starting with a letter or digit (so never ``.``, ``..`` or a
hidden file), at most :data:`MAX_NAME` characters (far below every file system's 255 bytes,
with room for the suffixes we add: ``.json``, ``_TCI.tif``, ``.part``, the staging prefix).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fullmaja_stac.errors import FullMajaError

MAX_NAME = 160
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


class UnsafeNameError(FullMajaError):
    """A name from outside that cannot become a file or folder name."""


def shown(value: object, limit: int = 100) -> str:
    """A name from outside as it may be printed: quoted, control characters escaped (a
    newline cannot start a fake line of our output), long ones cut."""
    text = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
    return text if len(text) <= limit else f"{text[: limit - 5]}…{text[-4:]} ({len(value)} characters)"


def name_problem(name: object) -> str | None:
    """Why ``name`` is not a safe file name, or None if it is."""
    if not isinstance(name, str):
        return f"is {shown(name)}, not text"
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is {len(name)} characters long (at most {MAX_NAME})"
    if not SAFE_NAME.fullmatch(name):
        return ("may hold only ASCII letters, digits and _ - . +, and start with a letter or a digit "
                "(no path separator, no '..', no control character)")
    return None


def safe_name(name: object, what: str) -> str:
    """``name`` itself if it may name a file or folder; else an :class:`UnsafeNameError` that
    says ``what`` it was (``"the MTD's PRODUCT_ID"``) and why it is refused."""
    problem = name_problem(name)
    if problem is not None:
        raise UnsafeNameError(f"{what} {shown(name)} cannot name a file: it {problem}")
    return name  # type: ignore[return-value]


def within(root: Path | str, *names: str, what: str = "a name") -> Path:
    """``root / name / …`` after checking every name with :func:`safe_name`; refused if it
    resolves outside ``root`` (a link inside ``root`` that leads out)."""
    root = Path(root)
    path = root
    for name in names:
        path = path / safe_name(name, what)
        # A safe name cannot climb; only a symbolic link among the new components can lead
        # out. One lstat per component (realpath of the whole path cost a quarter of a
        # catalog commit).
        if path.is_symlink():
            real_root, real = os.path.realpath(root), os.path.realpath(path)
            if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
                raise UnsafeNameError(f"{what} {shown('/'.join(names))} leads outside {root} (through a symbolic link)")
    return path


def inside(root: Path | str, relative: str) -> Path | None:
    """The file a URL path names under ``root`` (the static server's one lookup), or None
    if it resolves outside ``root`` (``..``, a link leading out) or no file can have such a
    name. Several segments are allowed here, unlike :func:`within`: they are a URL's, and
    what is checked is where they resolve."""
    if "\x00" in relative or len(relative) > 4096 or any(len(part) > 255 for part in relative.split("/")):
        return None
    root = Path(root).resolve()
    try:
        target = (root / relative).resolve()  # path-ok: checked just below
    except (OSError, ValueError, RuntimeError):  # a name the file system refuses, a link loop
        return None
    return target if target.is_relative_to(root) else None
