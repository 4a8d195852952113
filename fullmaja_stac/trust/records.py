"""Remote documents as typed records: the one place a service's JSON is checked.

A GEODES search page and a PEPS status document are decoded straight into the structures
below (msgspec), which hold only the fields we use, with their types. A document of the
wrong shape anywhere (``features`` a dict, ``eo:cloud_cover`` "ten", ``results`` a string)
fails here with one line that says what and where (``$.features[3].properties.grid:code``),
never later as a traceback deep in the code. Unknown fields are ignored: services add them.

Why msgspec: its errors carry the JSON path, it decodes and checks in one pass (a full
GEODES page of 80 items in well under a millisecond), and it is one small wheel with no
dependency; pydantic would do the same with a larger install for no gain here.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec

from fullmaja_stac.trust.paths import shown


class RecordError(ValueError):
    """A remote document that is not of the shape we read; the text says where."""


# ----------------------------------------------------------------------------- GEODES


class GeodesAsset(msgspec.Struct, omit_defaults=True):
    href: str | None = None
    type: str | None = None
    title: str | None = None
    roles: list[str] = []
    description: str | None = None


class GeodesProperties(msgspec.Struct):
    identifier: str | None = None
    datetime: str | None = None
    start_datetime: str | None = None
    end_datetime: str | None = None
    cloud_cover: float | None = msgspec.field(default=None, name="eo:cloud_cover")
    relative_orbit: int | None = msgspec.field(default=None, name="sat:relative_orbit")
    grid_code: str | None = msgspec.field(default=None, name="grid:code")


class GeodesFeature(msgspec.Struct):
    id: str = ""
    properties: GeodesProperties = msgspec.field(default_factory=GeodesProperties)
    assets: dict[str, GeodesAsset] = {}


class GeodesContext(msgspec.Struct):
    matched: int | None = None
    returned: int | None = None


class GeodesPage(msgspec.Struct):
    features: list[GeodesFeature] = []
    context: GeodesContext | None = None


# ----------------------------------------------------------------------------- PEPS


class PepsUserInfo(msgspec.Struct):
    job_status: str
    process: str | float | None = None
    results: list[str] | None = None
    unprocessed: int | str | None = None
    logs: list[str] | None = None
    message: str | None = None


class PepsStatus(msgspec.Struct):
    USER_INFO: PepsUserInfo


class RestoError(msgspec.Struct):
    """The error document resto answers with instead of a status."""

    ErrorCode: int | str | None = None
    ErrorMessage: str | None = None


# ----------------------------------------------------------------------------- STAC items read back


class MaskBitfield(msgspec.Struct):
    """One ``classification:bitfields`` entry of a mask asset, as the analysis stage reads it
    from an item that may come from anywhere (a catalog on disk, a STAC API)."""

    name: str
    offset: Annotated[int, msgspec.Meta(ge=0, le=31)]
    length: Annotated[int, msgspec.Meta(ge=1, le=32)]

    def __post_init__(self) -> None:
        if self.offset + self.length > 32:
            raise ValueError(f"bitfield {shown(self.name)} ends at bit {self.offset + self.length}, "
                             "past a mask's 32 bits")


def mask_bitfields(value: object, what: str) -> list[MaskBitfield]:
    """An asset's ``classification:bitfields`` as records (none if absent), or a RecordError
    naming ``what`` and the path of the first wrong entry."""
    if value is None:
        return []
    try:
        return msgspec.convert(value, list[MaskBitfield])
    except msgspec.ValidationError as exc:
        raise RecordError(f"{what} classification:bitfields is not a list of bitfields: {exc}") from None


class RasterBandFields(msgspec.Struct):
    scale: float | None = None
    offset: float | None = None
    nodata: float | str | None = None  # "nan", "inf" are allowed by the raster extension


class EoBandFields(msgspec.Struct):
    name: str | None = None


class AssetFields(msgspec.Struct):
    """The fields of an asset the analysis stage computes with."""

    raster_bands: list[RasterBandFields] | None = msgspec.field(default=None, name="raster:bands")
    eo_bands: list[EoBandFields] | None = msgspec.field(default=None, name="eo:bands")
    bitfields: list[MaskBitfield] | None = msgspec.field(default=None, name="classification:bitfields")


def check_item_fields(item_id: str, bbox: object, assets: dict) -> None:
    """Refuse, in one line naming the item, asset and path, an item whose bbox or whose
    assets' raster:bands, eo:bands or classification:bitfields are not of their shape; the
    analysis stage reads them only after this check (``assets``: key -> extra fields)."""
    if bbox is not None:
        try:
            msgspec.convert(bbox, Annotated[list[float], msgspec.Meta(min_length=4, max_length=6)])
        except msgspec.ValidationError as exc:
            raise RecordError(f"item {shown(item_id)}: its bbox is not 4 or 6 numbers: {exc}") from None
    for key, fields in assets.items():
        try:
            msgspec.convert(fields, AssetFields)
        except msgspec.ValidationError as exc:
            raise RecordError(f"item {shown(item_id)}: asset {shown(key)} is not of the expected shape: {exc}") from None


def resto_error(data: bytes) -> RestoError | None:
    """The error resto answered with (``{"ErrorCode", "ErrorMessage"}``), or None if ``data``
    is something else: a status document, another error page."""
    try:
        error = msgspec.json.decode(data, type=RestoError)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return error if error.ErrorCode is not None or error.ErrorMessage is not None else None


def decode(data: bytes, kind: type, what: str):
    """``data`` decoded as ``kind``, or a :class:`RecordError` naming ``what`` and the path."""
    try:
        return msgspec.json.decode(data, type=kind)
    except msgspec.ValidationError as exc:
        raise RecordError(f"{what} is not of the expected shape: {exc}") from None
    except msgspec.DecodeError as exc:
        snippet = data[:80].decode("utf-8", "replace").strip().replace("\n", " ")
        raise RecordError(f"{what} is not JSON ({exc}): {shown(snippet)}") from None


def http_url(value: str, what: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; a RecordError otherwise."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise RecordError(f"{what} {shown(value)} is not an http(s) URL")
    return value


def count(value: int | str | None, what: str) -> int:
    """A count a service may send as a number or as digits; anything else is refused."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise RecordError(f"{what} {shown(value)} is not a count")
