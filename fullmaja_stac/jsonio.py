"""JSON and atomic writes, shared by every stage that writes files: a temporary name in the
same folder, then ``os.replace``, so a reader never sees half a file; a file whose content
would not change is not rewritten."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import orjson


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask). mkstemp's 0600 would hide
    the catalog from a web server that runs as another user."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


NEW_FILE_MODE = _new_file_mode()


def write_atomic(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temporary file in the same folder; False if unchanged."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, NEW_FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def dump_json(obj: dict) -> bytes:
    """Indented UTF-8 JSON. orjson's C encoder: the standard library's falls back to pure
    Python as soon as ``indent`` is set, and items of ~45 assets made it the cost of a commit."""
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def write_json(path: Path, obj: dict) -> bool:
    return write_atomic(path, dump_json(obj))


def read_json(path: Path, default=None):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
