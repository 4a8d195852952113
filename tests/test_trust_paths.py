"""Trust boundary: a name from outside (an MTD's PRODUCT_ID or file list, a service's file
name, a catalog's own index) never becomes a path that leaves its root (issue 24, 1-2)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fullmaja_stac.errors import ProductError
from fullmaja_stac.ingest.run import ingest
from fullmaja_stac.maja.product import read_identity
from fullmaja_stac.maja.synthetic import SynthOptions, write_product
from fullmaja_stac.trust.paths import UnsafeNameError, name_problem, safe_name, within

PACKAGE = Path(__file__).resolve().parents[1] / "fullmaja_stac"

# Names an attacker or an unlucky tool would send: every kind the rule must refuse.
HOSTILE_NAMES = [
    "..", ".", "", "../../../etc/passwd", "/abs/x", "a/b", "a\\b", "..\\..\\x", "C:\\x", "C:x", "x\x00y",
    "x\ny", "error: fake line", "é", "café.zip", ".hidden", "-rf", "x" * 300, "x" * 161, "a b", "~root", "$HOME",
    "\u202etxt.exe", "nul\u0000", "x/..", "%2e%2e", "…",
]


def _with_product_id(folder: Path, new_id: str) -> Path:
    """A product folder whose MTD says PRODUCT_ID = ``new_id`` (the files keep their names)."""
    mtd = next(folder.glob("*_MTD_ALL.xml"))
    text = mtd.read_text(encoding="utf-8")
    old = re.search(r"<PRODUCT_ID>([^<]*)</PRODUCT_ID>", text).group(1)
    escaped = new_id.replace("&", "&amp;").replace("<", "&lt;").replace("\x00", "")
    mtd.write_text(text.replace(f"<PRODUCT_ID>{old}</PRODUCT_ID>", f"<PRODUCT_ID>{escaped}</PRODUCT_ID>"), encoding="utf-8")
    return folder


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("bad", ["..", "../../victim", "../../../victim/../victim", "x\nerror: fake", "x" * 300])
def test_a_hostile_product_id_touches_nothing_and_the_good_product_lands(tmp_path, catalog, series_specs, bad):
    """PRODUCT_ID `..` used to delete the tile's folder (7 items → 0), `../../x` wrote or
    deleted outside the catalog, a newline printed a fake line, 300 characters stopped the
    good product beside it."""
    cat = tmp_path / "catalog"
    shutil.copytree(catalog, cat)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    before, outside = _tree(cat), _tree(tmp_path / "victim")
    hostile = _with_product_id(write_product(series_specs[0], tmp_path / "in", SynthOptions(size=24, seed=9, zipped=False)),
                               bad.replace("../../victim", str(Path("..", "..", "..", "..", "..", "victim"))))
    good = write_product(series_specs[1], tmp_path / "good", SynthOptions(size=24, seed=9, version="9-9"))
    report = ingest([hostile, good], cat, workers=1)
    assert [f[0] for f in report.failed] == [str(hostile)], report
    reason = report.failed[0][1]
    assert "PRODUCT_ID" in reason and "\n" not in reason
    assert report.replaced and report.replaced[0][0].endswith("_V9-9")  # the good one landed
    after = _tree(cat)
    assert {k for k in before if not k.startswith(str(Path("maja-s2-l2a", "31TCJ", "2019")))} <= set(after)
    assert len([k for k in after if k.endswith(".json") and k.count("/") == 4]) == 5  # five items, still
    assert _tree(tmp_path / "victim") == outside


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(min_size=0, max_size=400)))
def test_within_never_leaves_its_root(tmp_path, name):
    """Property: whatever the name, ``within`` gives a path directly inside the root or refuses."""
    try:
        path = within(tmp_path, name)
    except UnsafeNameError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    assert path.parent == tmp_path and name_problem(name) is None
    assert os.path.realpath(path).startswith(str(tmp_path.resolve()) + os.sep)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_hostile_name_is_refused(name):
    with pytest.raises(UnsafeNameError):
        safe_name(name, "a name")


def test_a_link_planted_inside_the_root_is_not_followed_out(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "x").symlink_to(tmp_path / "outside")
    with pytest.raises(UnsafeNameError, match="symbolic link"):
        within(tmp_path / "root", "x", "y")


_MTD_FOLDER: dict[str, Path] = {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.sampled_from(HOSTILE_NAMES), st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00\r"),
                                                         min_size=1, max_size=300)))
def test_an_mtd_id_becomes_an_item_id_only_if_safe(tmp_path_factory, series_specs, name):
    """Property over the MTD: ``read_identity`` (what decides the item's folders) accepts an id
    only if it is a safe name, and says why in one line otherwise."""
    if "base" not in _MTD_FOLDER:
        _MTD_FOLDER["base"] = write_product(series_specs[0], tmp_path_factory.mktemp("mtd"),
                                            SynthOptions(size=24, seed=1, zipped=False))
    folder = _MTD_FOLDER["base"]
    mtd = next(folder.glob("*_MTD_ALL.xml"))
    original = mtd.read_bytes()
    try:
        _with_product_id(folder, name)
        try:
            identity = read_identity(folder)
        except ProductError as exc:
            # refused: an unsafe or empty name, or one XML 1.0 cannot hold (a control character:
            # the MTD itself is then malformed); always said in one line
            not_xml = any(ord(c) < 0x20 and c not in "\t\n" for c in name)
            assert name_problem(name.strip()) is not None or name.strip() == "" or not_xml, exc.problem
            assert "\n" not in exc.problem
            return
        assert name_problem(identity.id) is None
    finally:
        mtd.write_bytes(original)


# Joins of a folder with something that may come from outside: every one must go through
# trust.paths (within/safe_name), or say on its line why it is safe (`# path-ok: why`).
_JOIN = re.compile(r"""/\s*(?:f["']|[\w.\[\]"']*\b(?:id|item_id|name|file_name|identifier|remote_id|filename|stem|rel)\b(?!\())""")


def test_no_path_join_bypasses_the_safe_helper():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() in ("trust/paths.py", "maja/synthetic.py", "emulator/server.py"):
            continue  # the helper itself; the writer of our own test products and its server
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if _JOIN.search(code) and "within(" not in code and "# path-ok" not in line \
                    and not re.search(r"[\"']\s*/|/\s*[\"']|//|https?:", code):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "path joins that bypass trust.paths.within:\n" + "\n".join(offenders)
