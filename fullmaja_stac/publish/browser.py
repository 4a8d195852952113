"""Build STAC Browser once, into the state folder, for ``fullmaja-stac serve --browser``.

The npm package ships sources only. We build 4.0.1 with ``ol-stac`` pinned to 1.1.0: STAC
Browser 4.0.1 hands the map its own ``stac-js`` 0.1 objects, and only ol-stac 1.0/1.1 are
built on that stac-js (later ones call 0.4/0.5 methods such as ``getStatistics`` and
``rankGeoFiles`` on them, so nothing is shown and "Show on map" throws). Hash routing, the
``/browser/`` prefix and the runtime ``config.js`` make one build serve any catalog URL: the
server writes that file on the fly. The Earth basemap is read from that file too
(``basemapUrl``), and there is none by default, so the map works offline with no failed
requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from fullmaja_stac.errors import FullMajaError

STAC_BROWSER = "@radiantearth/stac-browser@4.0.1"
OL_STAC_PIN = "1.1.0"  # the ol-stac built on STAC Browser 4.0.1's stac-js ~0.1 (see above)
# The Earth basemap comes from the runtime config (none by default: offline, no failed request).
BASEMAPS_EARTH = """earth: (typeof window !== 'undefined' && window.STAC_BROWSER_CONFIG && window.STAC_BROWSER_CONFIG.basemapUrl)
    ? [{url: window.STAC_BROWSER_CONFIG.basemapUrl, is: 'XYZ', title: 'Basemap', projection: 'EPSG:3857',
        attributions: window.STAC_BROWSER_CONFIG.basemapAttributions || ''}]
    : [],"""


# Masks (CLM, MG2, SAT, EDG…) are bitfields with no nodata: ol-stac drew their 0 ("nothing
# flagged") black and opaque over the whole grid, outside the item too (issue 27.6). An asset
# with classification:bitfields is drawn transparent where 0 and magenta where any bit is set
# (white would vanish on the map's white background when no basemap is configured). Two
# patches: where ol-stac turns an asset into its GeoTIFF source (its last statement), and
# where it makes the WebGL layer of that source (the colour).
OL_STAC_FILE = Path("node_modules") / "ol-stac" / "util.js"
OL_STAC_ANCHOR = "export function getGeoTiffSourceInfoFromAsset("
OL_STAC_MASK_PATCH = """    // fullmaja-stac: a bitfield mask is transparent where 0 (see layer/STAC.js for its colour)
    const bitfields = (typeof asset.getMetadata === 'function' && asset.getMetadata('classification:bitfields'))
        || asset['classification:bitfields'];
    if (Array.isArray(bitfields) && bitfields.length > 0) {
        sourceInfo.nodata = 0;
        sourceInfo.min = 0;
        sourceInfo.max = 1;
    }
    return sourceInfo;
"""
OL_STAC_LAYER_FILE = Path("node_modules") / "ol-stac" / "layer" / "STAC.js"
OL_STAC_LAYER_LINE = "            const layer = new WebGLTileLayer({ source });\n            this.addLayer_(layer, asset);\n"
OL_STAC_LAYER_PATCH = """            // fullmaja-stac: a bitfield mask is magenta where any bit is set, transparent elsewhere
            const maskBits = (typeof asset.getMetadata === 'function' && asset.getMetadata('classification:bitfields'))
                || asset['classification:bitfields'];
            const layer = (Array.isArray(maskBits) && maskBits.length > 0)
                ? new WebGLTileLayer({ source, style: { color: ['case', ['>', ['band', 1], 0], [255, 0, 255, 0.8], [0, 0, 0, 0]] } })
                : new WebGLTileLayer({ source });
            this.addLayer_(layer, asset);
"""
BUILD_ID = f"{STAC_BROWSER} ol-stac {OL_STAC_PIN} runtime-basemap masks-magenta-1"  # a build made otherwise is rebuilt
BUILD_STAMP = ".fullmaja-stac-build"


def built_browser(state_dir: Path) -> Path | None:
    """The build in the state folder, if it was made the way this version builds it."""
    dist = state_dir / "stac-browser"
    try:
        same = (dist / BUILD_STAMP).read_text() == BUILD_ID
    except OSError:
        same = False
    return dist if same and (dist / "index.html").exists() else None


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise FullMajaError(f"`{cmd[0]}` is not installed; STAC Browser is built with Node.js and npm") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
        raise FullMajaError(f"`{' '.join(cmd)}` failed in {cwd}:\n" + "\n".join(tail))


def build_browser(state_dir: Path, log=print) -> Path:
    """Fetch, patch and build STAC Browser; returns the dist folder (atomic: all or nothing)."""
    target = state_dir / "stac-browser"
    with tempfile.TemporaryDirectory(dir=state_dir, prefix=".stac-browser-build-") as tmp:
        work = Path(tmp)
        log(f"fetching {STAC_BROWSER} …")
        _run(["npm", "pack", STAC_BROWSER, "--silent"], work)
        tgz = next(work.glob("*.tgz"))
        with tarfile.open(tgz) as tar:
            tar.extractall(work, filter="data")
        src = work / "package"
        pkg = json.loads((src / "package.json").read_text())
        pkg["dependencies"]["ol-stac"] = OL_STAC_PIN
        pkg["overrides"] = {**pkg.get("overrides", {}), "ol-stac": OL_STAC_PIN}
        (src / "package.json").write_text(json.dumps(pkg, indent=2))
        basemaps = src / "basemaps.config.js"
        text = basemaps.read_text()
        start = text.index("earth: [")
        end = text.index("],", start) + 2
        basemaps.write_text(text[:start] + BASEMAPS_EARTH + text[end:])
        index = src / "public" / "index.html"
        index.write_text(index.read_text().replace(
            '<!-- <script defer="defer" src="/config.js"></script> -->', '<script src="config.js"></script>'))
        log("npm install (a few minutes the first time) …")
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], src)
        _patch_mask_rendering(src)
        log("building …")
        env = {**os.environ, "SB_historyMode": "hash", "SB_pathPrefix": "/browser/", "SB_catalogUrl": ""}
        _run(["npm", "run", "build:minimal"], src, env)
        dist = src / "dist"
        if not (dist / "index.html").exists():
            raise FullMajaError(f"the STAC Browser build produced no index.html in {dist}")
        staged = state_dir / ".stac-browser-new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(dist, staged)
        (staged / BUILD_STAMP).write_text(BUILD_ID)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
    return target


def _patch_mask_rendering(ol_stac_root: Path) -> None:
    """Apply :data:`OL_STAC_MASK_PATCH` and :data:`OL_STAC_LAYER_PATCH` to the installed ol-stac.

    Each anchor must be found exactly where ol-stac 1.1.0 has it: a build of another version
    fails here rather than showing masks black."""
    util_js = ol_stac_root / OL_STAC_FILE
    text = util_js.read_text(encoding="utf-8")
    start = text.find(OL_STAC_ANCHOR)
    end = text.find("    return sourceInfo;\n}", start)
    if start < 0 or end < 0:
        raise FullMajaError(f"{util_js} is not the ol-stac {OL_STAC_PIN} this build patches (masks would show black)")
    util_js.write_text(text[:end] + OL_STAC_MASK_PATCH + text[end + len("    return sourceInfo;\n"):], encoding="utf-8")
    layer_js = ol_stac_root / OL_STAC_LAYER_FILE
    text = layer_js.read_text(encoding="utf-8")
    if text.count(OL_STAC_LAYER_LINE) != 1:
        raise FullMajaError(f"{layer_js} is not the ol-stac {OL_STAC_PIN} this build patches (masks would have no colour)")
    layer_js.write_text(text.replace(OL_STAC_LAYER_LINE, OL_STAC_LAYER_PATCH), encoding="utf-8")


# ----------------------------------------------------------------------------- runtime settings

BROWSER_PREFIX = "/browser/"


def _crs_definitions(catalog: Path) -> dict[str, str]:
    """WKT1 of every UTM zone the catalog uses, so STAC Browser needs no online lookup."""
    from pyproj import CRS
    from pyproj.enums import WktVersion

    from fullmaja_stac.jsonio import read_json
    from fullmaja_stac.stac.constants import COLLECTION_ID
    from fullmaja_stac.tiles import tile_grid

    coll = read_json(catalog / COLLECTION_ID / "collection.json", {}) or {}
    codes = {tile_grid(code.removeprefix("MGRS-")).epsg for code in coll.get("summaries", {}).get("grid:code", [])}
    return {f"EPSG:{c}": CRS.from_epsg(c).to_wkt(WktVersion.WKT1_GDAL) for c in sorted(codes)}


def browser_config(catalog: Path, catalog_url: str, basemap_url: str | None = None) -> bytes:
    config = {
        "catalogUrl": catalog_url,
        "catalogTitle": "MAJA Sentinel-2 L2A",
        "allowExternalAccess": False,
        "historyMode": "hash",
        "pathPrefix": BROWSER_PREFIX,
        "crs": _crs_definitions(catalog),
        "displayGeoTiffByDefault": False,
        "basemapUrl": basemap_url,  # an XYZ template such as https://tile.openstreetmap.org/{z}/{x}/{y}.png
    }
    return f"window.STAC_BROWSER_CONFIG = {json.dumps(config, indent=2)};\n".encode()
