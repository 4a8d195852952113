"""STAC Browser, for real: built from npm, served by `fullmaja-stac serve --browser`, driven
by Playwright in Debian's headless Chromium. Everything (the build, the screenshots) is
written under pytest's temporary folders; FULLMAJA_STAC_TEST_BROWSER_STATE names a folder
whose STAC Browser build is reused between local runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not CHROMIUM or not shutil.which("npm"),
    reason="needs Debian's chromium and npm (.ci/run installs them)",
)]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-screenshots")


@pytest.fixture(scope="module")
def browsed(catalog, tmp_path_factory) -> Path:
    """The test catalog plus its monthly composites (a second collection for the browser)."""
    from fullmaja_stac.analysis.composite import composite

    copy = tmp_path_factory.mktemp("browsed") / "catalog"
    shutil.copytree(catalog, copy)
    assert composite(copy).written
    return copy


@pytest.fixture(scope="module")
def served(browsed, tmp_path_factory):
    """`fullmaja-stac serve --browser` as a user runs it, on a free port."""
    import socket

    state = Path(os.environ.get("FULLMAJA_STAC_TEST_BROWSER_STATE") or tmp_path_factory.mktemp("browser-state"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "FULLMAJA_STAC_STATE_DIR": str(state)}
    proc = subprocess.Popen([sys.executable, "-m", "fullmaja_stac.cli", "serve", str(browsed), "--browser",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 900  # the first run builds STAC Browser with npm
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {proc.stdout.read()}")
        try:
            if requests.get(f"{base}/browser/", timeout=2).ok:
                break
        except requests.ConnectionError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("STAC Browser did not come up")
    yield base
    proc.terminate()
    proc.wait(10)


def test_stac_browser_shows_collection_and_item(served, browsed, artifacts):
    from playwright.sync_api import sync_playwright

    catalog = browsed

    # A partly cloudy item, so that its cloud mask has both values to draw.
    items = {path: json.loads(path.read_text()) for path in sorted(catalog.glob("maja-s2-l2a/*/*/*/*.json"))}
    item_path = min(items, key=lambda path: abs(items[path]["properties"]["eo:cloud_cover"] - 50))
    item = items[item_path]
    assert 20 <= item["properties"]["eo:cloud_cover"] <= 80
    rel = item_path.relative_to(catalog).as_posix()
    errors: list[str] = []
    our_failures: list[str] = []
    host = urlparse(served).netloc

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: m.type == "error" and errors.append((m.text, m.location.get("url", ""))))
        page.on("pageerror", lambda e: errors.append((str(e), served)))
        page.on("requestfailed", lambda r: urlparse(r.url).netloc == host and our_failures.append(r.url))
        page.on("response", lambda r: urlparse(r.url).netloc == host and r.status >= 400 and our_failures.append(f"{r.status} {r.url}"))

        page.goto(f"{served}/browser/#/maja-s2-l2a/collection.json")
        page.get_by_text("Tile 31TCJ").first.wait_for(timeout=60_000)
        page.screenshot(path=str(artifacts / "collection.png"), full_page=True)

        page.goto(f"{served}/browser/#/{rel}")
        page.get_by_text(item["properties"]["title"]).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        body = page.inner_text("body")
        props = item["properties"]
        assert re.search(rf"Cloud Cover\s+{props['eo:cloud_cover']:g}\s*%", body), body[:2000]
        assert re.search(rf"Rel\. Orbit Number\s+{props['sat:relative_orbit']}\b", body)
        assert "Cloud mask R1" in body and "Geophysical mask R2" in body and "Edge (no-data) mask R1" in body
        thumb = page.locator(f"img[src*='{Path(item['assets']['thumbnail']['href']).name}']").first
        thumb.wait_for(state="attached", timeout=30_000)
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle(), timeout=30_000)
        page.wait_for_timeout(2000)  # the map draws the COG tiles
        page.screenshot(path=str(artifacts / "item.png"), full_page=True)
        # The item map shows the true-colour `visual` COG, not only the footprint outline.
        map_png = page.locator(".map-container, .ol-viewport").first.screenshot()
        assert _image_pixels(map_png) > 0.05, "the item map shows no image"
        # "Show on map" on a reflectance band loads it (it threw getStatistics errors with ol-stac 1.5).
        page.get_by_text("Flat reflectance (slope-corrected) B4").first.click()
        page.locator("button:visible", has_text="Show on map").first.click()
        _shown_badge(page, "Flat reflectance (slope-corrected) B4").wait_for(timeout=30_000)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(artifacts / "item-red-on-map.png"))
        # "Show on map" on a mask (issue 27.6): its 0 ("nothing flagged", no nodata) was drawn black
        # and opaque over the whole grid; now transparent, flagged pixels magenta. The item's
        # clouds cover eo:cloud_cover of its grid, which covers a good part of the map.
        page.get_by_text("Cloud mask R1").first.click()
        page.locator("button:visible", has_text="Show on map").first.click()
        _shown_badge(page, "Cloud mask R1").wait_for(timeout=30_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(2000)
        mask_png = page.locator(".map-container, .ol-viewport").first.screenshot()
        (artifacts / "item-clm-on-map.png").write_bytes(mask_png)
        assert _black_pixels(mask_png) < 0.02, "the mask is drawn as a black map"
        assert _magenta_pixels(mask_png) > 0.01, "the mask's flagged pixels are not drawn"
        page.get_by_text("Thumbnails").first.click()
        page.screenshot(path=str(artifacts / "item-thumbnail.png"))

        # A monthly composite (issue 25) shows its median visual on the item map.
        comp_path = sorted(catalog.glob("maja-s2-l2a-composite/*/*/*/*.json"))[0]
        comp = json.loads(comp_path.read_text())
        page.goto(f"{served}/browser/#/{comp_path.relative_to(catalog).as_posix()}")
        page.get_by_text(comp["properties"]["title"]).first.wait_for(timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(2000)
        comp_png = page.locator(".map-container, .ol-viewport").first.screenshot()
        page.screenshot(path=str(artifacts / "composite.png"), full_page=True)
        assert _image_pixels(comp_png) > 0.05, "the composite's map shows no image"
        assert "Clear observations" in page.inner_text("body")
        browser.close()

    # No basemap is configured (offline), so no request may fail, from any origin.
    assert not our_failures, our_failures
    assert not errors, f"console errors: {errors}"


def _shown_badge(page, asset_title: str):
    """The "Shown" badge on one asset's header (only the asset on the map has it)."""
    return page.locator("button.btn-asset", has_text=asset_title).locator(".badge.shown").first


def _magenta_pixels(png: bytes) -> float:
    """Share of a screenshot's pixels drawn in the mask colour (magenta over the map)."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float(((rgb[..., 0] > 200) & (rgb[..., 1] < 120) & (rgb[..., 2] > 200)).mean())


def _black_pixels(png: bytes) -> float:
    """Share of a screenshot's pixels that are (near) black."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((rgb.max(axis=2) < 30).mean())


def _image_pixels(png: bytes) -> float:
    """Share of a screenshot's pixels that are imagery: neither the page's white nor the
    footprint outline's blue."""
    import io

    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    white = rgb.min(axis=2) > 235
    outline = (np.abs(rgb - (51, 153, 204)) < 40).all(axis=2)
    return float((~white & ~outline).mean())
