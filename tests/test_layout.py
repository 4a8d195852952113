"""The layout is the architecture (issue 26): imports go one way between the stage packages,
no circle, a handful of loose modules, short CLI commands and API functions."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "fullmaja_stac"

# Lowest first; a module may import its own stage or a lower one, never a higher one.
STAGES = ["base", "maja", "providers", "stac", "ingest", "analysis", "publish", "emulator", "cli"]
BASE = {"__init__", "config", "errors", "jsonio", "progress", "tiles", "lifeline", "_forkserver_lifeline", "trust"}
LOOSE_MAX = 8
# the package's own front door may hand out a stage's public function, lazily (``from fullmaja_stac import load``)
FRONT_DOOR = {"fullmaja_stac.analysis.load"}


def _stage(module: str) -> str:
    """The stage of ``fullmaja_stac.x.y``: its first component, or ``base``."""
    first = module.split(".")[1] if "." in module else "__init__"
    return "base" if first in BASE else first


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every fullmaja_stac import, lazy ones inside functions included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fullmaja_stac"):
            names = [f"{node.module}.{a.name}" for a in node.names] if node.module == "fullmaja_stac" else [node.module]
            out += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("fullmaja_stac")]
    return out


def _module(path: Path) -> str:
    return ".".join(("fullmaja_stac", *path.relative_to(PACKAGE).with_suffix("").parts))


def test_imports_go_one_way_between_the_stages():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _stage(_module(path))
        assert source in STAGES, f"{path}: stage {source!r} is in no layer of this test; place it"
        for line, target in _imports(path):
            if target == "fullmaja_stac.__version__" or (path == PACKAGE / "__init__.py" and target in FRONT_DOOR):
                continue
            if STAGES.index(_stage(target)) > STAGES.index(source):
                upward.append(f"{path.relative_to(PACKAGE)}:{line}: {source} imports {target} ({_stage(target)})")
    assert not upward, "imports against the pipeline's direction:\n" + "\n".join(upward)


def test_at_most_eight_loose_modules():
    loose = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= LOOSE_MAX, loose


def _long_functions(path: Path, limit: int) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [f"{path.name}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)" for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > limit]


def test_cli_commands_and_api_functions_read_on_one_screen():
    assert not _long_functions(PACKAGE / "cli.py", 45)
    assert not [f for p in (PACKAGE / "publish" / "api").glob("*.py") for f in _long_functions(p, 80)]
