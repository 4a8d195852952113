"""Validate every object of a catalog on disk against its JSON schemas.

Uses stac-validator, recursively. By default the schemas come from the mirror bundled in
``fullmaja_stac/data/stac-schemas`` (byte-for-byte copies of the published schemas, see its
README), so validation works offline; ``online=True`` fetches them instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from fullmaja_stac.errors import FullMajaError

BUNDLED_SCHEMA_MAP = Path(str(files("fullmaja_stac").joinpath("data", "stac-schemas", "schema-map.json")))


@dataclass
class ValidationResult:
    checked: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (path, error)

    @property
    def ok(self) -> bool:
        return self.checked > 0 and not self.invalid


def validate_catalog(catalog: Path, schema_map: Path | None = BUNDLED_SCHEMA_MAP, online: bool = False) -> ValidationResult:
    root = Path(catalog)
    root_file = root / "catalog.json" if root.is_dir() else root
    if not root_file.exists():
        raise FullMajaError(f"{root_file}: no catalog here; run `fullmaja-stac ingest` first")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from stac_validator.validate import StacValidate

        validator = StacValidate(str(root_file), recursive=True,
                                 schema_config=None if online or schema_map is None else str(schema_map))
        validator.run()
    result = ValidationResult()
    for message in validator.message:
        result.checked += 1
        kind = message.get("asset_type", "?")
        result.by_type[kind] = result.by_type.get(kind, 0) + 1
        if not message.get("valid_stac"):
            error = message.get("error_message") or message.get("error_type") or "invalid"
            result.invalid.append((message.get("path", "?"), str(error)))
    return result
