"""Build STAC Browser once, into the state folder, for ``fullmaja-stac serve --browser``.

The npm package ships sources only. We build 4.0.1 with ``ol-stac`` pinned to 1.5.1 (1.6.0
breaks the build against the ``ol`` it pins), hash routing and the ``/browser/`` prefix, and
with its runtime ``config.js`` enabled, so one build serves any catalog URL: the server
writes that file on the fly.
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
OL_STAC_PIN = "1.5.1"


def built_browser(state_dir: Path) -> Path | None:
    dist = state_dir / "stac-browser"
    return dist if (dist / "index.html").exists() else None


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
        index = src / "public" / "index.html"
        index.write_text(index.read_text().replace(
            '<!-- <script defer="defer" src="/config.js"></script> -->', '<script src="config.js"></script>'))
        log("npm install (a few minutes the first time) …")
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], src)
        log("building …")
        env = {**os.environ, "SB_historyMode": "hash", "SB_pathPrefix": "/browser/", "SB_catalogUrl": ""}
        _run(["npm", "run", "build:minimal"], src, env)
        dist = src / "dist"
        if not (dist / "index.html").exists():
            raise FullMajaError(f"the STAC Browser build produced no index.html in {dist}")
        staged = state_dir / ".stac-browser-new"
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(dist, staged)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staged, target)
    return target


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


def browser_config(catalog: Path, catalog_url: str) -> bytes:
    config = {
        "catalogUrl": catalog_url,
        "catalogTitle": "MAJA Sentinel-2 L2A",
        "allowExternalAccess": False,
        "historyMode": "hash",
        "pathPrefix": BROWSER_PREFIX,
        "crs": _crs_definitions(catalog),
        "displayGeoTiffByDefault": False,
    }
    return f"window.STAC_BROWSER_CONFIG = {json.dumps(config, indent=2)};\n".encode()
