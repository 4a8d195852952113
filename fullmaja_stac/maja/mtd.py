"""Parse a MUSCATE ``MTD_ALL.xml`` (and the JPI file) into plain values.

Only ``defusedxml`` touches the bytes, with DTDs forbidden: a metadata file has no business
declaring entities, so billion-laughs and external-entity documents are refused outright.

| MTD element (root ``Muscate_Metadata_Document``)                         | field              |
|--------------------------------------------------------------------------|--------------------|
| Product_Characteristics/PRODUCT_ID, with its version (fallback IDENTIFIER, which real products write without it) | ``id`` |
| Dataset_Identification/GEOGRAPHICAL_ZONE                                 | ``tile``           |
| Product_Characteristics/ACQUISITION_DATE                                 | ``acquired``       |
| Product_Characteristics/PRODUCTION_DATE                                  | ``produced``       |
| Product_Characteristics/PRODUCT_VERSION                                  | ``product_version``|
| Product_Characteristics/PRODUCT_LEVEL                                    | ``level``          |
| Product_Characteristics/PLATFORM                                         | ``platform``       |
| Product_Characteristics/ORBIT_NUMBER                                     | ``absolute_orbit`` |
| Product_Characteristics/Band_Group_List/Group[@group_id]/Band_List/BAND_ID | ``band_groups``  |
| Product_Organisation/Muscate_Product/QUICKLOOK                           | ``quicklook``      |
| …/Image_List/Image/Image_Properties/NATURE + Image_File_List/IMAGE_FILE  | ``images``         |
| …/Mask_List/Mask/Mask_Properties/NATURE + Mask_File_List/MASK_FILE       | ``masks``          |
| …/Data_List/Data/Data_File_List/DATA_FILE (``_JPI_ALL.xml``)             | ``jpi``            |
| Geoposition_Informations/…/HORIZONTAL_CS_CODE                            | ``epsg``           |
| …/Geopositioning/Group_Geopositioning[@group_id]/ULX ULY XDIM YDIM NROWS NCOLS | ``grids``    |
| …/Geopositioning/Global_Geopositioning/Point[@name]/LAT LON               | ``corners``        |
| Geometric_Informations/Mean_Value_List/Sun_Angles/ZENITH_ANGLE AZIMUTH_ANGLE | ``sun_*``      |
| …/Mean_Viewing_Incidence_Angle_List/Mean_Viewing_Incidence_Angle[@band_id] | ``viewing``      |
| Radiometric_Informations/REFLECTANCE_QUANTIFICATION_VALUE                | ``reflectance_quantification`` |
| Radiometric_Informations/AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE  | ``aot_quantification`` |
| Radiometric_Informations/WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE        | ``wvc_quantification`` |
| Radiometric_Informations/Special_Values_List/SPECIAL_VALUE[@name]        | ``special_values`` |
| …/Spectral_Band_Informations_List/Spectral_Band_Informations[@band_id]/Wavelength/MIN MAX CENTRAL (nm), SOLAR_IRRADIANCE | ``spectral`` |
| Quality_Informations/Current_Product/Product_Quality_List[@level=N2]/…/QUALITY_INDEX[@name] | ``quality`` |
| any element pair NAME=MAJA… / VERSION (MTD or JPI); MAJA's own writer puts none | ``maja_version`` |
| JPI ``JobProcessingInformations``: Processing_Flags_And_Modes[Key=Validity_Flag]/Value L2VALD / L2NOTV | ``valid`` |

Checked against MAJA's own MUSCATE templates and writer (CNES/MAJA, ``Plugins/SENTINEL2_MUSCATE``
and ``orchestrator/plugins/common/muscate``): docs/NOTES.md says what is verified and what is not.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone

import defusedxml
import defusedxml.ElementTree as SafeET

from fullmaja_stac.errors import ProductError

ROOT_TAG = "Muscate_Metadata_Document"


@dataclass(frozen=True)
class FileEntry:
    """One IMAGE_FILE / MASK_FILE line: a path and the attributes that say what it holds."""

    nature: str
    path: str
    group_id: str | None = None
    band_id: str | None = None
    band_number: int | None = None
    bit_number: int | None = None
    detector_id: str | None = None
    encoding: str | None = None


@dataclass(frozen=True)
class SpectralInfo:
    """One band's Spectral_Band_Informations: wavelengths in nm, solar irradiance in W/m²/µm."""

    central_nm: float | None = None
    min_nm: float | None = None
    max_nm: float | None = None
    solar_irradiance: float | None = None


@dataclass
class MtdContent:
    id: str
    tile: str | None
    acquired: datetime
    produced: datetime | None
    product_version: str | None
    level: str | None
    platform: str | None
    absolute_orbit: int | None
    epsg: int
    grids: dict[str, tuple[float, float, float, float, int, int]]
    corners: dict[str, tuple[float, float]]
    sun_zenith: float | None
    sun_azimuth: float | None
    viewing: dict[str, tuple[float, float]]
    reflectance_quantification: float | None
    aot_quantification: float | None
    wvc_quantification: float | None
    special_values: dict[str, float]
    quality: dict[str, str]
    band_groups: dict[str, tuple[str, ...]]
    quicklook: str | None
    images: list[FileEntry] = field(default_factory=list)
    masks: list[FileEntry] = field(default_factory=list)
    jpi: str | None = None
    maja_version: str | None = None
    spectral: dict[str, SpectralInfo] = field(default_factory=dict)


def parse_xml(data: bytes, source: str) -> ET.Element:
    """Parse untrusted XML; entity and DTD declarations are refused. Namespaces are dropped."""
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise ProductError(source, f"refused: the XML declares a DTD or entities ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise ProductError(source, f"malformed XML ({exc})") from None
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    text = el.text.strip()
    return text or None


def _float(el: ET.Element | None) -> float | None:
    text = _text(el)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _int_attr(el: ET.Element, name: str) -> int | None:
    value = el.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_datetime(text: str) -> datetime:
    """MUSCATE writes ``2019-03-05T08:48:16.456Z`` (sometimes without Z or fraction)."""
    value = text.strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _files(root: ET.Element, source: str, list_tag: str, item_tag: str, props_tag: str, file_tag: str) -> list[FileEntry]:
    entries: list[FileEntry] = []
    for item in root.iterfind(f".//Product_Organisation//{list_tag}/{item_tag}"):
        nature = _text(item.find(f"{props_tag}/NATURE")) or ""
        encoding = _text(item.find(f"{props_tag}/ENCODING"))
        for f in item.iterfind(f".//{file_tag}"):
            path = _text(f)
            if not path:  # a band that silently went missing would land as an item without it
                what = " ".join(f"{k}={v}" for k, v in f.attrib.items() if k in ("band_id", "group_id", "bit_number"))
                raise ProductError(source, f"the MTD lists an empty {file_tag} ({nature or 'no nature'}"
                                           f"{', ' + what if what else ''}); the metadata file is damaged")
            entries.append(FileEntry(
                nature=nature,
                path=path,
                group_id=f.get("group_id"),
                band_id=f.get("band_id"),
                band_number=_int_attr(f, "band_number"),
                bit_number=_int_attr(f, "bit_number"),
                detector_id=f.get("detector_id"),
                encoding=encoding,
            ))
    return entries


def find_maja_version(root: ET.Element) -> str | None:
    """MAJA's version, wherever a NAME that starts with MAJA sits beside a VERSION."""
    for parent in root.iter():
        name = _text(parent.find("NAME"))
        version = _text(parent.find("VERSION"))
        if name and version and name.upper().startswith("MAJA"):
            return version
    return None


def find_validity(root: ET.Element) -> bool | None:
    """True for L2VALD, False for L2NOTV, None if the JPI says neither. MAJA writes the flag
    as the Value of the Processing_Flags_And_Modes whose Key is Validity_Flag; any element
    holding exactly L2VALD/L2NOTV is accepted as a fallback."""
    for flag in root.iterfind(".//Processing_Flags_And_Modes"):
        if _text(flag.find("Key")) == "Validity_Flag":
            value = (_text(flag.find("Value")) or "").upper()
            if value in ("L2VALD", "VALD"):
                return True
            if value in ("L2NOTV", "NOTV"):
                return False
    for el in root.iter():
        text = _text(el)
        if text == "L2VALD":
            return True
        if text == "L2NOTV":
            return False
    return None


def parse_mtd(data: bytes, source: str) -> MtdContent:
    """Read what we need from MTD_ALL.xml; a missing mandatory element is a ProductError."""
    root = parse_xml(data, source)
    if root.tag != ROOT_TAG:
        raise ProductError(source, f"not a MUSCATE metadata file (root element is <{root.tag}>, expected <{ROOT_TAG}>)")

    def required(path: str) -> str:
        value = _text(root.find(path))
        if value is None:
            raise ProductError(source, f"missing element {path}")
        return value

    # PRODUCT_ID carries the version (…_C_V1-0); real IDENTIFIERs stop at the nature (…_C)
    product_id = _text(root.find("Product_Characteristics/PRODUCT_ID")) or required("Dataset_Identification/IDENTIFIER")
    try:
        acquired = parse_datetime(required("Product_Characteristics/ACQUISITION_DATE"))
        produced_text = _text(root.find("Product_Characteristics/PRODUCTION_DATE"))
        produced = parse_datetime(produced_text) if produced_text else None
    except ValueError as exc:
        raise ProductError(source, f"bad date in Product_Characteristics ({exc})") from None

    epsg_text = required(".//Coordinate_Reference_System/Horizontal_Coordinate_System/HORIZONTAL_CS_CODE")
    try:
        epsg = int(epsg_text.upper().replace("EPSG:", ""))
    except ValueError:
        raise ProductError(source, f"HORIZONTAL_CS_CODE {epsg_text!r} is not an EPSG code") from None

    grids: dict[str, tuple[float, float, float, float, int, int]] = {}
    for g in root.iterfind(".//Geopositioning//Group_Geopositioning"):
        values = [_float(g.find(tag)) for tag in ("ULX", "ULY", "XDIM", "YDIM", "NROWS", "NCOLS")]
        if g.get("group_id") and all(v is not None for v in values):
            ulx, uly, xdim, ydim, nrows, ncols = values  # type: ignore[misc]
            grids[g.get("group_id")] = (ulx, uly, xdim, ydim, int(nrows), int(ncols))
    if not grids:
        raise ProductError(source, "no Group_Geopositioning (ULX, ULY, XDIM, YDIM, NROWS, NCOLS) found")

    corners: dict[str, tuple[float, float]] = {}
    for p in root.iterfind(".//Global_Geopositioning/Point"):
        lat, lon = _float(p.find("LAT")), _float(p.find("LON"))
        if p.get("name") and lat is not None and lon is not None:
            corners[p.get("name")] = (lat, lon)

    viewing: dict[str, tuple[float, float]] = {}
    for v in root.iterfind(".//Mean_Value_List/Mean_Viewing_Incidence_Angle_List/Mean_Viewing_Incidence_Angle"):
        zen, azi = _float(v.find("ZENITH_ANGLE")), _float(v.find("AZIMUTH_ANGLE"))
        if v.get("band_id") and zen is not None and azi is not None:
            viewing[v.get("band_id")] = (zen, azi)

    special: dict[str, float] = {}
    for s in root.iterfind(".//Radiometric_Informations/Special_Values_List/SPECIAL_VALUE"):
        value = _float(s)
        if s.get("name") and value is not None:
            special[s.get("name")] = value

    quality: dict[str, str] = {}
    quality_lists = root.findall(".//Quality_Informations/Current_Product/Product_Quality_List")
    n2 = [q for q in quality_lists if q.get("level") == "N2"] or quality_lists
    for q in n2[:1]:
        for idx in q.iterfind(".//Global_Index_List/QUALITY_INDEX"):
            if idx.get("name") and _text(idx) is not None:
                quality[idx.get("name")] = _text(idx)  # type: ignore[assignment]

    band_groups: dict[str, tuple[str, ...]] = {}
    for g in root.iterfind("Product_Characteristics/Band_Group_List/Group"):
        bands = tuple(b for b in (_text(x) for x in g.iterfind(".//BAND_ID")) if b)
        if g.get("group_id"):
            band_groups[g.get("group_id")] = bands

    spectral: dict[str, SpectralInfo] = {}
    for b in root.iterfind(".//Radiometric_Informations/Spectral_Band_Informations_List/Spectral_Band_Informations"):
        if b.get("band_id"):
            spectral[b.get("band_id")] = SpectralInfo(
                central_nm=_float(b.find("Wavelength/CENTRAL")), min_nm=_float(b.find("Wavelength/MIN")),
                max_nm=_float(b.find("Wavelength/MAX")), solar_irradiance=_float(b.find("SOLAR_IRRADIANCE")))
    jpi = None
    for f in root.iterfind(".//Product_Organisation//DATA_FILE"):
        text = _text(f)
        if text and text.endswith("_JPI_ALL.xml"):
            jpi = text

    orbit_text = _text(root.find("Product_Characteristics/ORBIT_NUMBER"))
    radiometry = root.find("Radiometric_Informations")
    return MtdContent(
        id=product_id,
        tile=_text(root.find("Dataset_Identification/GEOGRAPHICAL_ZONE")),
        acquired=acquired,
        produced=produced,
        product_version=_text(root.find("Product_Characteristics/PRODUCT_VERSION")),
        level=_text(root.find("Product_Characteristics/PRODUCT_LEVEL")),
        platform=_text(root.find("Product_Characteristics/PLATFORM")),
        absolute_orbit=int(orbit_text) if orbit_text and orbit_text.isdigit() else None,
        epsg=epsg,
        grids=grids,
        corners=corners,
        sun_zenith=_float(root.find(".//Mean_Value_List/Sun_Angles/ZENITH_ANGLE")),
        sun_azimuth=_float(root.find(".//Mean_Value_List/Sun_Angles/AZIMUTH_ANGLE")),
        viewing=viewing,
        reflectance_quantification=_float(radiometry.find("REFLECTANCE_QUANTIFICATION_VALUE")) if radiometry is not None else None,
        aot_quantification=_float(radiometry.find("AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE")) if radiometry is not None else None,
        wvc_quantification=_float(radiometry.find("WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE")) if radiometry is not None else None,
        special_values=special,
        quality=quality,
        band_groups=band_groups,
        quicklook=_text(root.find(".//Product_Organisation/Muscate_Product/QUICKLOOK")),
        images=_files(root, source, "Image_List", "Image", "Image_Properties", "IMAGE_FILE"),
        masks=_files(root, source, "Mask_List", "Mask", "Mask_Properties", "MASK_FILE"),
        jpi=jpi,
        maja_version=find_maja_version(root),
        spectral=spectral,
    )
