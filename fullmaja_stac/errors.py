"""Errors a user can act on.

The CLI prints these as one line (no traceback); anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class FullMajaError(Exception):
    """Base class for errors caused by input, configuration or a remote service."""


class ProductError(FullMajaError):
    """A MAJA product that cannot be read; names the file and what is wrong with it."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def warn_line(text: str) -> None:
    """A warning the user should act on, as one plain line on stderr (not a Python warning,
    which would also print a source line)."""
    import sys

    print(f"warning: {text}", file=sys.stderr, flush=True)
