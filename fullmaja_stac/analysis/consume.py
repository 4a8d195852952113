"""Small helpers so the catalog loads in stackstac and odc-stac with no extra arguments.

Why two: pystac migrates projection v1.2 to v2 on read and drops ``proj:epsg``, which
stackstac needs, and stackstac opens asset hrefs verbatim (relative ones would resolve
against the working directory). So stackstac gets raw item dicts with absolute hrefs, and
odc-stac (which wants pystac Items and reads ``proj:code``) gets pystac Items.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, unquote, urljoin

import pystac

from fullmaja_stac.stac.constants import COLLECTION_ID


def item_files(catalog: Path, collection: str | None = None) -> list[Path]:
    """Item JSON paths reachable from the catalog's links, in link order.

    With ``collection``, and a root whose child of that id sits in a folder of that name (the
    layout we write), only that child is walked: the L2A readers then neither read the
    composites nor depend on them (a composite folder deleted by hand breaks nothing else)."""
    root = Path(catalog)
    start = root / "catalog.json" if root.is_dir() else root
    seen: list[Path] = []
    top = start.resolve()
    stack = [top]
    while stack:
        path = stack.pop(0)
        doc = json.loads(path.read_text(encoding="utf-8"))
        links = [link for link in doc.get("links", []) if link.get("rel") in ("child", "item")]
        if collection and path == top:
            own = [link for link in links if link["rel"] == "child"
                   and Path(link["href"]).parent.name == collection]
            links = own or links
        for link in links:
            target = (path.parent / link["href"]).resolve()
            (seen.append(target) if link["rel"] == "item" else stack.append(target))
    return seen


def read_item(path: Path) -> dict:
    """One item JSON as a dict, its asset hrefs made absolute paths."""
    item = json.loads(path.read_text(encoding="utf-8"))
    base = path.resolve().as_uri()
    for asset in item["assets"].values():
        asset["href"] = unquote(urljoin(base, asset["href"]).removeprefix("file://"))
    return item


def href_under(href: str, catalog: Path, base_url: str) -> str:
    """The URL of a file of ``catalog`` once the catalog folder is published at ``base_url``;
    an href outside the catalog is returned as it is."""
    root = str(Path(catalog).resolve()) + os.sep
    return f"{base_url.rstrip('/')}/{quote(href[len(root):])}" if href.startswith(root) else href


def stackstac_items(catalog: str | Path, collection: str = COLLECTION_ID) -> list[dict]:
    """The L2A items of a local catalog (or those of ``collection``) as dicts with absolute
    asset hrefs, for ``stackstac.stack``."""
    items = [item for item in map(read_item, item_files(Path(catalog), collection)) if item.get("collection") == collection]
    return sorted(items, key=lambda i: (i["properties"].get("datetime") or i["properties"].get("start_datetime"), i["id"]))


def odc_items(catalog: str | Path, collection: str = COLLECTION_ID) -> list[pystac.Item]:
    """The L2A items of a local catalog (or those of ``collection``) as pystac Items, for
    ``odc.stac.load``."""
    items = [item for item in map(lambda path: pystac.Item.from_file(str(path)), item_files(Path(catalog), collection))
             if item.collection_id == collection]
    return sorted(items, key=lambda i: (i.datetime or i.common_metadata.start_datetime, i.id))
