"""Validate every object of a catalog on disk against its JSON schemas.

The core schema of each object's type and the schema of each of its ``stac_extensions`` are
checked. Schemas come from the mirror bundled in ``fullmaja_stac/data/stac-schemas``
(byte-for-byte copies of the published schemas, see its README) and are compiled once per
process by ``jsonschema-rs`` (a fraction of a millisecond per 86 KB item, where
stac-validator re-reads the schemas for every object and pure-Python ``jsonschema`` takes
~100 ms); an object found invalid is checked again by ``jsonschema`` (with ``referencing``),
whose ``best_match`` says precisely what is wrong and where. Validation works offline with
the plain install; large catalogs are validated by a process pool. ``online=True`` lets
schemas missing from the mirror be fetched.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fullmaja_stac.errors import FullMajaError
from fullmaja_stac.lifeline import die_with_parent, worker_context

BUNDLED_SCHEMA_MAP = Path(str(files("fullmaja_stac").joinpath("data", "stac-schemas", "schema-map.json")))
CORE = {"Catalog": "catalog-spec/json-schema/catalog.json", "Collection": "collection-spec/json-schema/collection.json",
        "Feature": "item-spec/json-schema/item.json"}
KIND = {"Catalog": "CATALOG", "Collection": "COLLECTION", "Feature": "ITEM"}
PARALLEL_FROM = 5000  # objects: below this, starting worker processes costs more than it saves (bench_validate)


@dataclass
class ValidationResult:
    checked: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, error)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.invalid


class SchemaSet:
    """Validators for schema URLs, from a URL → local file map (and, where ``online``, the
    web for what the map lacks)."""

    def __init__(self, schema_map: Path | None = BUNDLED_SCHEMA_MAP, online: bool = False) -> None:
        self.mapping = json.loads(Path(schema_map).read_text()) if schema_map else {}
        self.folder = Path(schema_map).parent if schema_map else Path()
        self.online = online
        self._fast: dict[str, object] = {}
        self._exact: dict[str, object] = {}
        self._registry = None

    def document(self, uri: str) -> dict:
        local = self.mapping.get(uri.split("#", 1)[0])
        if local is not None:
            return json.loads((self.folder / local).read_text(encoding="utf-8"))
        if self.online:  # a schema from the web is a remote document like any other: watched, capped
            from fullmaja_stac.trust.remote import fetch, watched_session

            answer = fetch(watched_session(), "GET", uri, what=f"the schema {uri}")
            if answer.status_code != 200:
                raise LookupError(f"schema {uri}: HTTP {answer.status_code}")
            return json.loads(answer.content)
        raise LookupError(f"schema {uri} is not bundled")

    def fast(self, url: str):
        """A compiled jsonschema-rs validator (the verdict)."""
        found = self._fast.get(url)
        if found is None:
            import jsonschema_rs

            found = self._fast[url] = jsonschema_rs.validator_for(self.document(url), retriever=self.document)
        return found

    def exact(self, url: str):
        """A jsonschema validator, for the message when the verdict is "invalid"."""
        found = self._exact.get(url)
        if found is None:
            from jsonschema.validators import validator_for
            from referencing import Registry, Resource

            if self._registry is None:
                self._registry = Registry(retrieve=lambda uri: Resource.from_contents(self.document(uri)))
            schema = self.document(url)
            cls = validator_for(schema)
            found = self._exact[url] = cls(schema, registry=self._registry)
        return found

    def errors(self, doc: dict) -> list[str]:
        """Why ``doc`` is not valid STAC (empty when it is)."""
        kind = doc.get("type")
        version = doc.get("stac_version")
        if kind not in CORE or not isinstance(version, str):
            return [f"not a STAC object (type {kind!r}, stac_version {version!r})"]
        extensions = doc.get("stac_extensions") or []
        if not isinstance(extensions, list) or not all(isinstance(u, str) for u in extensions):
            return ["stac_extensions must be a list of schema URLs"]
        problems = []
        for url in [f"https://schemas.stacspec.org/v{version}/{CORE[kind]}", *extensions]:
            try:
                validator = self.fast(url)
            except Exception as exc:  # jsonschema-rs and the lookup raise several kinds: all mean "no schema"
                problems.append(f"schema {url} is not available offline ({type(exc).__name__}); use --online")
                continue
            if not validator.is_valid(doc):
                problems.append(self._explain(url, doc, validator))
        return problems

    def _explain(self, url: str, doc: dict, validator) -> str:
        from jsonschema.exceptions import best_match

        error = best_match(self.exact(url).iter_errors(doc))
        while error is not None and error.context and len(repr(error.instance)) > 120:
            # "not valid under any of the given schemas": the branch that got furthest says what is wrong
            error = max(error.context, key=lambda e: (len(e.absolute_path), -len(e.schema_path)))
        if error is None:  # the two validators disagree: keep the fast one's words
            first = next(iter(validator.iter_errors(doc)), None)
            return f"{(first.message if first else 'invalid')[:300]} (schema {url})"
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return f"{error.message[:300]} at {where} (schema {url})"


@lru_cache(maxsize=4)
def _schemas(schema_map: str | None, online: bool) -> SchemaSet:
    return SchemaSet(Path(schema_map) if schema_map else None, online)


def _check(paths: list[str], schema_map: str | None, online: bool) -> list[tuple[str, str | None, str | None]]:
    """(path, kind, error) for each file (runs in worker processes for large catalogs)."""
    schemas = _schemas(schema_map, online)
    out = []
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            out.append((path, None, f"cannot be read as JSON ({exc})"))
            continue
        problems = schemas.errors(doc) if isinstance(doc, dict) else ["not a JSON object"]
        out.append((path, KIND.get(doc.get("type")) if isinstance(doc, dict) else None, "; ".join(problems) or None))
    return out


def catalog_objects(root_file: Path) -> list[Path]:
    """Every object reachable from the root by child and item links, in link order."""
    seen: set[Path] = set()
    order: list[Path] = []
    stack = [root_file.resolve()]
    while stack:
        path = stack.pop(0)
        if path in seen:
            continue
        seen.add(path)
        order.append(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # reported by the check itself
        for link in doc.get("links", []) if isinstance(doc, dict) else []:
            href = link.get("href") if isinstance(link, dict) else None
            if link.get("rel") in ("child", "item") and isinstance(href, str) and "://" not in href:
                stack.append((path.parent / href).resolve())
    return order


def validate_catalog(catalog: Path, schema_map: Path | None = BUNDLED_SCHEMA_MAP, online: bool = False,
                     workers: int | None = None) -> ValidationResult:
    root = Path(catalog)
    root_file = root / "catalog.json" if root.is_dir() else root
    if not root_file.exists():
        raise FullMajaError(f"{root_file}: no catalog here; run `fullmaja-stac ingest` first")
    paths = [str(p) for p in catalog_objects(root_file)]
    key = str(schema_map) if schema_map else None
    workers = workers or (min(os.cpu_count() or 1, 8) if len(paths) >= PARALLEL_FROM else 1)
    if workers > 1:
        chunk = max(50, len(paths) // (workers * 4))
        parts = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
        with ProcessPoolExecutor(workers, mp_context=worker_context(), initializer=die_with_parent) as pool:
            checked = [row for rows in pool.map(_check, parts, [key] * len(parts), [online] * len(parts)) for row in rows]
    else:
        checked = _check(paths, key, online)
    result = ValidationResult()
    for path, kind, error in checked:
        result.checked += 1
        result.by_type[kind or "?"] = result.by_type.get(kind or "?", 0) + 1
        if error:
            result.invalid.append((path, error))
    return result
