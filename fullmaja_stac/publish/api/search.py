"""Item search requests, checked and turned into SQL for the search index.

Every part of a request is untrusted. Property names are looked up in the index's own list of
queryables and become *our* column names; operators come from closed tables; every value is
checked for its type and bound as an SQL parameter. No text of a request is ever part of the
SQL string. Whatever is refused raises :class:`SearchError` with one line for the client.

GET and POST searches go through the same :func:`parse_search`: GET values are strings that
are decoded first (``bbox=1,2,3,4``, ``filter`` as CQL2-text or JSON, ``sortby=-datetime``).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import shapely
import shapely.geometry

MAX_LIMIT = 1000
DEFAULT_LIMIT = 10
MAX_OFFSET = 10_000_000
MAX_FILTER_DEPTH = 32  # nesting of CQL2 expressions
MAX_FILTER_NODES = 2000
MAX_FILTER_TEXT = 20_000  # characters of CQL2-text
MAX_LIST = 1000  # ids, collections, `in` lists
MAX_STRING = 1000
MAX_VERTICES = 10_000

# Queryable kinds (JSON-schema-like) and the literal types each accepts.
NUMBER, INTEGER, STRING, BOOLEAN, TIMESTAMP, GEOMETRY = "number", "integer", "string", "boolean", "timestamp", "geometry"

COMPARISONS = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
SWAPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
SPATIAL = {"s_intersects", "s_disjoint", "s_within", "s_contains", "s_equals", "s_touches", "s_overlaps", "s_crosses"}
TEMPORAL = {"t_intersects", "anyinteracts", "t_equals", "t_before", "t_after", "t_during"}
LOGICAL = {"and", "or", "not"}
KNOWN_OPS = sorted({*COMPARISONS, *SPATIAL, *TEMPORAL, *LOGICAL, "like", "between", "in", "isNull"})

# Query extension operators (https://github.com/stac-api-extensions/query)
QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
QUERY_LIKE = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}

SEARCH_FIELDS = {"collections", "ids", "bbox", "intersects", "datetime", "limit", "token", "filter", "filter-lang",
                 "filter_lang", "filter-crs", "query", "sortby", "fields"}
CRS84 = {"http://www.opengis.net/def/crs/OGC/1.3/CRS84", "https://www.opengis.net/def/crs/OGC/1.3/CRS84",
         "http://www.opengis.net/def/crs/EPSG/0/4326", "EPSG:4326"}


class SearchError(ValueError):
    """A request the API refuses with 400; the message is one line for the client."""


@dataclass(frozen=True)
class Queryable:
    """A property the index can filter and sort on: ``column`` is our own SQL identifier."""

    name: str
    column: str
    kind: str


@dataclass
class Search:
    """A checked search: SQL conditions with their parameters, order, page and fields."""

    where: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fields: bool = False  # the Fields extension was asked for (even empty: the default set)
    include: set[str] | None = None
    exclude: set[str] = field(default_factory=set)

    @property
    def where_sql(self) -> str:
        return " AND ".join(f"({w})" for w in self.where) if self.where else "1"


def shown(value: Any, width: int = 60) -> str:
    """A value as it may appear in an error message: short, printable, one line."""
    text = repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= width else text[: width - 1] + "…"


# ----------------------------------------------------------------------------- literals


def to_epoch(text: Any, what: str = "datetime", dates: bool = True) -> float:
    """An RFC 3339 timestamp (or, where ``dates``, a date) as seconds since 1970, UTC."""
    if not isinstance(text, str) or len(text) > 64:
        raise SearchError(f"{what}: {shown(text)} is not an RFC 3339 timestamp")
    value = text.strip()
    try:
        if dates and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            when = datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        else:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", value):
                raise ValueError
            value = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("z", "Z").replace("Z", "+00:00").replace("t", "T"))
            when = datetime.fromisoformat(value)
    except ValueError:
        raise SearchError(f"{what}: {shown(text)} is not an RFC 3339 timestamp (e.g. 2019-03-01T00:00:00Z)") from None
    return when.timestamp()


def parse_datetime_range(value: Any) -> tuple[float | None, float | None]:
    """The ``datetime`` search parameter: an instant, or ``start/end`` with ``..`` open ends."""
    if not isinstance(value, str) or not value.strip():
        raise SearchError(f"datetime: {shown(value)} is not a timestamp or an interval 'start/end'")
    parts = value.split("/")
    if len(parts) == 1:
        instant = to_epoch(parts[0], dates=False)
        return instant, instant
    if len(parts) != 2:
        raise SearchError(f"datetime: {shown(value)} is not a timestamp or an interval 'start/end'")
    start = None if parts[0] in ("", "..") else to_epoch(parts[0], dates=False)
    end = None if parts[1] in ("", "..") else to_epoch(parts[1], dates=False)
    if start is None and end is None:
        raise SearchError("datetime: an interval needs at least one end ('../2019-06-01T00:00:00Z')")
    if start is not None and end is not None and start > end:
        raise SearchError(f"datetime: the interval {shown(value)} ends before it starts")
    return start, end


def parse_bbox(value: Any) -> tuple[float, float, float, float]:
    """``bbox``: four numbers (or six, with heights that are ignored), in WGS84 degrees."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, (list, tuple)) or len(value) not in (4, 6):
        raise SearchError("bbox: four numbers are needed: west,south,east,north")
    numbers = []
    for v in value:
        try:
            if isinstance(v, bool):
                raise ValueError
            n = float(v)
        except (TypeError, ValueError):
            raise SearchError(f"bbox: {shown(v)} is not a number") from None
        if not math.isfinite(n):
            raise SearchError(f"bbox: {shown(v)} is not a finite number")
        numbers.append(n)
    west, south, east, north = (numbers[0], numbers[1], numbers[3], numbers[4]) if len(numbers) == 6 else numbers
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise SearchError("bbox: longitudes must lie in [-180, 180] and latitudes in [-90, 90]")
    if south > north:
        raise SearchError("bbox: south is greater than north")
    return west, south, east, north


def parse_geometry(value: Any, what: str = "intersects") -> shapely.Geometry:
    """A GeoJSON geometry (or a CQL2 ``{"bbox": [...]}``) in WGS84, checked for sanity."""
    if isinstance(value, dict) and set(value) == {"bbox"}:
        west, south, east, north = parse_bbox(value["bbox"])
        return shapely.box(min(west, east), south, max(west, east), north)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise SearchError(f"{what}: a GeoJSON geometry is needed (an object with 'type' and 'coordinates')")
    try:
        geom = shapely.geometry.shape(value)
    except Exception:  # shapely raises many kinds for bad GeoJSON; the reason is the input
        raise SearchError(f"{what}: not a valid GeoJSON geometry") from None
    coords = shapely.get_coordinates(geom)
    if len(coords) > MAX_VERTICES:
        raise SearchError(f"{what}: the geometry has more than {MAX_VERTICES} vertices")
    if geom.is_empty or not coords.size or not (abs(coords[:, 0]) <= 180).all() or not (abs(coords[:, 1]) <= 90).all():
        raise SearchError(f"{what}: coordinates must be finite WGS84 longitudes and latitudes")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return geom


def parse_int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise SearchError(f"{what}: {shown(value)} is not an integer")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise SearchError(f"{what}: {shown(value)} is not an integer")
    if not low <= number <= high:
        raise SearchError(f"{what}: {number} is out of range [{low}, {high}]")
    return number


def _string_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and len(v) <= MAX_STRING for v in value):
        raise SearchError(f"{what}: a list of strings is needed")
    if len(value) > MAX_LIST:
        raise SearchError(f"{what}: at most {MAX_LIST} values")
    return value


# ----------------------------------------------------------------------------- CQL2


def _depth_and_size(node: Any) -> tuple[int, int]:
    """Nesting depth and node count of a JSON value, without recursion."""
    depth, count, stack = 0, 0, [(node, 1)]
    while stack:
        item, level = stack.pop()
        count += 1
        depth = max(depth, level)
        if depth > MAX_FILTER_DEPTH * 3 or count > MAX_FILTER_NODES * 4:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return depth, count


def _paren_depth(text: str) -> int:
    depth = deepest = 0
    quoted = False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif not quoted and char == ")":
            depth -= 1
    return deepest


def cql2_text_to_json(text: str) -> dict:
    """CQL2-text to CQL2-JSON with the ``cql2`` parser, after bounding its size and nesting."""
    if len(text) > MAX_FILTER_TEXT:
        raise SearchError(f"filter: longer than {MAX_FILTER_TEXT} characters")
    if _paren_depth(text) > MAX_FILTER_DEPTH:
        raise SearchError(f"filter: nested deeper than {MAX_FILTER_DEPTH} levels")
    try:
        import cql2
    except ImportError:  # pragma: no cover - part of the [api] extra
        raise SearchError("filter: CQL2-text needs the cql2 package on the server; send CQL2-JSON") from None
    try:
        return cql2.parse_text(text).to_json()
    except Exception as exc:  # cql2 raises ParseError/ValidationError/ValueError: all the input's fault
        first = next((line.strip() for line in str(exc).splitlines() if "expected" in line), "")
        raise SearchError(f"filter: not valid CQL2-text{': ' + first if first else ''}") from None


class Translator:
    """CQL2-JSON (already bounded in size) → an SQL condition and its parameters."""

    def __init__(self, queryables: dict[str, Queryable]) -> None:
        self.queryables = queryables
        self.params: list[Any] = []
        self.numeric_strings = False  # the Query extension's clients send "18" for 18

    # -- names ------------------------------------------------------------------------
    def queryable(self, name: Any) -> Queryable:
        if not isinstance(name, str):
            raise SearchError(f"filter: a property name must be a string, not {shown(name)}")
        key = name.removeprefix("properties.")
        if key in self.queryables:
            return self.queryables[key]
        raise SearchError(f"unknown property {shown(name)}; queryable: {', '.join(sorted(self.queryables))}")

    def _bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    # -- values -----------------------------------------------------------------------
    def literal(self, value: Any, kind: str, prop: str) -> Any:
        """A literal checked against the queryable's kind, in the form stored in the index."""
        if value is None:
            raise SearchError(f"filter: {prop} compared with null; use isNull (\"{prop} IS NULL\")")
        if kind == TIMESTAMP:
            if isinstance(value, dict) and set(value) in ({"timestamp"}, {"date"}):
                return to_epoch(next(iter(value.values())), prop)
            if isinstance(value, str):
                return to_epoch(value, prop)
        elif kind in (NUMBER, INTEGER):
            if isinstance(value, str) and self.numeric_strings and len(value) < 40:
                try:
                    value = float(value)
                except ValueError:
                    pass
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                return value
        elif kind == STRING:
            if isinstance(value, str) and len(value) <= MAX_STRING:
                return value
        elif kind == BOOLEAN:
            if isinstance(value, bool):
                return int(value)
        raise SearchError(f"filter: {prop} is a {kind}; {shown(value)} is not")

    def operand(self, arg: Any) -> tuple[str, Queryable | None]:
        """SQL for a property reference, or None as queryable for a literal (not bound yet)."""
        if isinstance(arg, dict) and set(arg) == {"property"}:
            q = self.queryable(arg["property"])
            if q.kind == GEOMETRY:
                raise SearchError("filter: geometry can only be used with the spatial operators (s_intersects, …)")
            return q.column, q
        return "", None

    # -- expressions ------------------------------------------------------------------
    def expr(self, node: Any) -> str:
        if isinstance(node, bool):
            return "1" if node else "0"
        if not isinstance(node, dict) or "op" not in node or not isinstance(node.get("args", []), list):
            raise SearchError(f"filter: expected an expression {{\"op\": …, \"args\": […]}}, got {shown(node)}")
        op, args = node["op"], node.get("args", [])
        if not isinstance(op, str):
            raise SearchError(f"filter: operator {shown(op)} is not a string")
        low = op.lower()
        if low in ("and", "or"):
            if len(args) < 2:
                raise SearchError(f"filter: '{low}' needs at least two arguments")
            return f" {low.upper()} ".join(f"({self.expr(a)})" for a in args)
        if low == "not":
            self._arity(op, args, 1)
            return f"NOT ({self.expr(args[0])})"
        if op in COMPARISONS:
            return self.comparison(COMPARISONS[op], args)
        if low == "like":
            return self.like(args)
        if low == "between":
            return self.between(args)
        if low == "in":
            return self.in_list(args)
        if low == "isnull":
            self._arity(op, args, 1)
            column, q = self.operand(args[0])
            if q is None:
                raise SearchError("filter: isNull needs a property")
            return f"{column} IS NULL"
        if low in SPATIAL:
            return self.spatial(low, args)
        if low in TEMPORAL:
            return self.temporal(low, args)
        raise SearchError(f"filter: unknown operator {shown(op)}; supported: {', '.join(KNOWN_OPS)}")

    @staticmethod
    def _arity(op: str, args: list, n: int) -> None:
        if len(args) != n:
            raise SearchError(f"filter: '{op}' takes {n} argument{'s' if n > 1 else ''}, not {len(args)}")

    def comparison(self, sql_op: str, args: list) -> str:
        self._arity(sql_op, args, 2)
        (left, lq), (right, rq) = self.operand(args[0]), self.operand(args[1])
        if lq is None and rq is None:
            raise SearchError("filter: a comparison needs a property on one side")
        if lq is not None and rq is not None:
            if lq.kind != rq.kind and {lq.kind, rq.kind} != {NUMBER, INTEGER}:
                raise SearchError(f"filter: {lq.name} ({lq.kind}) and {rq.name} ({rq.kind}) cannot be compared")
            return f"{left} {sql_op} {right}"
        if lq is None:
            sql_op = SWAPPED[sql_op]
            lq, left, args = rq, right, [args[1], args[0]]
        value = self.literal(args[1], lq.kind, lq.name)
        return f"{left} {sql_op} {self._bind(value)}"

    def like(self, args: list) -> str:
        self._arity("like", args, 2)
        column, q = self.operand(args[0])
        if q is None or q.kind != STRING:
            raise SearchError("filter: 'like' needs a string property on the left")
        pattern = args[1]
        if not isinstance(pattern, str) or len(pattern) > MAX_STRING:
            raise SearchError(f"filter: the pattern of 'like' must be a string, not {shown(pattern)}")
        return f"{column} LIKE {self._bind(pattern)} ESCAPE '\\'"

    def between(self, args: list) -> str:
        if len(args) == 2 and isinstance(args[1], list) and len(args[1]) == 2:  # the older [prop, [lo, hi]]
            args = [args[0], *args[1]]
        self._arity("between", args, 3)
        column, q = self.operand(args[0])
        if q is None:
            raise SearchError("filter: 'between' needs a property first")
        low, high = (self.literal(a, q.kind, q.name) for a in args[1:])
        return f"{column} BETWEEN {self._bind(low)} AND {self._bind(high)}"

    def in_list(self, args: list) -> str:
        self._arity("in", args, 2)
        column, q = self.operand(args[0])
        values = args[1]
        if q is None or not isinstance(values, list) or not values:
            raise SearchError("filter: 'in' needs a property and a non-empty list")
        if len(values) > MAX_LIST:
            raise SearchError(f"filter: 'in' takes at most {MAX_LIST} values")
        marks = ", ".join(self._bind(self.literal(v, q.kind, q.name)) for v in values)
        return f"{column} IN ({marks})"

    def spatial(self, op: str, args: list) -> str:
        self._arity(op, args, 2)
        props = [isinstance(a, dict) and set(a) == {"property"} for a in args]
        if props.count(True) != 1:
            raise SearchError(f"filter: '{op}' compares the geometry property with a literal geometry")
        prop, literal = (args[0], args[1]) if props[0] else (args[1], args[0])
        if self.queryable(prop["property"]).kind != GEOMETRY:
            raise SearchError(f"filter: '{op}' needs the geometry property, not {shown(prop['property'])}")
        if not props[0]:  # literal first: within/contains swap meaning
            op = {"s_within": "s_contains", "s_contains": "s_within"}.get(op, op)
        return spatial_sql(op, parse_geometry(literal, f"filter {op}"), self._bind)

    def temporal(self, op: str, args: list) -> str:
        self._arity(op, args, 2)
        column, q = self.operand(args[0])
        if q is None or q.kind != TIMESTAMP:
            raise SearchError(f"filter: '{op}' needs a timestamp property (such as datetime) first")
        start, end = self.instant_or_interval(args[1], q.name)
        if op in ("t_intersects", "anyinteracts"):
            conds = ([f"{column} >= {self._bind(start)}"] if start is not None else []) + \
                    ([f"{column} <= {self._bind(end)}"] if end is not None else [])
            return " AND ".join(conds) or f"{column} IS NOT NULL"
        if op == "t_during":
            conds = ([f"{column} > {self._bind(start)}"] if start is not None else []) + \
                    ([f"{column} < {self._bind(end)}"] if end is not None else [])
            return " AND ".join(conds) or f"{column} IS NOT NULL"
        if op == "t_equals":
            if start != end:
                raise SearchError("filter: t_equals compares an instant with an instant")
            return f"{column} = {self._bind(start)}"
        if op == "t_before":
            return f"{column} < {self._bind(start)}" if start is not None else "0"
        return f"{column} > {self._bind(end)}" if end is not None else "0"  # t_after

    def instant_or_interval(self, value: Any, prop: str) -> tuple[float | None, float | None]:
        if isinstance(value, dict) and set(value) == {"interval"}:
            ends = value["interval"]
            if not isinstance(ends, list) or len(ends) != 2:
                raise SearchError("filter: an interval has two ends")
            start, end = (None if e == ".." else self.literal(e, TIMESTAMP, prop) for e in ends)
            if start is not None and end is not None and start > end:
                raise SearchError("filter: the interval ends before it starts")
            return start, end
        if isinstance(value, dict) and set(value) == {"date"}:
            day = to_epoch(value["date"], prop)
            return day, day + 86400 - 1e-6
        instant = self.literal(value, TIMESTAMP, prop)
        return instant, instant


def spatial_sql(op: str, geom: shapely.Geometry, bind) -> str:
    """The R*Tree of footprint boxes picks the candidates, then shapely decides the exact
    relation for those only."""
    west, south, east, north = geom.bounds
    boxes = (f"n IN (SELECT n FROM items_box WHERE maxx >= {bind(west)} AND minx <= {bind(east)}"
             f" AND maxy >= {bind(south)} AND miny <= {bind(north)})")
    relation = bind("s_intersects" if op == "s_disjoint" else op)  # placeholders in SQL order
    test = f"{boxes} AND fm_spatial({relation}, geometry, {bind(shapely.to_wkb(geom))})"
    return f"NOT ({test})" if op == "s_disjoint" else test


def query_to_cql2(query: Any) -> dict[str, Any]:
    """The CQL2-JSON filter equivalent to a Query-extension object (all terms ANDed)."""
    terms: list[dict[str, Any]] = []
    if not isinstance(query, dict) or not query:
        raise SearchError("query must be an object such as {\"eo:cloud_cover\": {\"lt\": 20}}")
    for name, ops in query.items():
        if not isinstance(ops, dict) or not ops:
            raise SearchError(f"query on {shown(name)} must be an object of operators such as {{\"lt\": 20}}")
        prop = {"property": name}
        for op, value in ops.items():
            if value is None:
                raise SearchError(f"query on {shown(name)}: {op} null is not a comparison; leave the term out")
            if op in QUERY_OPS:
                terms.append({"op": QUERY_OPS[op], "args": [prop, value]})
            elif op == "in":
                if not isinstance(value, list):
                    raise SearchError(f"query on {shown(name)}: 'in' needs a list")
                terms.append({"op": "in", "args": [prop, value]})
            elif op in QUERY_LIKE:
                if not isinstance(value, str):
                    raise SearchError(f"query on {shown(name)}: {op} needs a string")
                escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                terms.append({"op": "like", "args": [prop, QUERY_LIKE[op].format(escaped)]})
            else:
                known = ", ".join([*QUERY_OPS, "in", *QUERY_LIKE])
                raise SearchError(f"query on {shown(name)}: unknown operator {shown(op)} (known: {known})")
    return terms[0] if len(terms) == 1 else {"op": "and", "args": terms}


# ----------------------------------------------------------------------------- the search


def _decode_json(value: Any, what: str) -> Any:
    if not isinstance(value, str):
        return value
    if len(value) > MAX_FILTER_TEXT * 5:
        raise SearchError(f"{what}: too long")
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        raise SearchError(f"{what}: not valid JSON") from None


def parse_sortby(value: Any, queryables: dict[str, Queryable]) -> list[str]:
    """``sortby``: ``-datetime,+id`` (GET) or ``[{"field": …, "direction": "asc|desc"}]`` (POST)."""
    terms: list[tuple[str, str]] = []
    if isinstance(value, str):
        for part in (p.strip() for p in value.split(",") if p.strip()):
            direction = "desc" if part.startswith("-") else "asc"
            terms.append((part.lstrip("+-").strip(), direction))
    elif isinstance(value, list):
        for term in value:
            if not isinstance(term, dict) or not isinstance(term.get("field"), str):
                raise SearchError("sortby: each term is {\"field\": name, \"direction\": \"asc\" or \"desc\"}")
            direction = term.get("direction", "asc")
            if direction not in ("asc", "desc"):
                raise SearchError(f"sortby: direction {shown(direction)} is neither 'asc' nor 'desc'")
            terms.append((term["field"], direction))
    else:
        raise SearchError("sortby: a list of fields is needed, such as -datetime,id")
    if len(terms) > 8:
        raise SearchError("sortby: at most 8 fields")
    order = []
    for name, direction in terms:
        key = name.removeprefix("properties.")
        q = queryables.get(key)
        if q is None or q.kind == GEOMETRY:
            sortable = ", ".join(sorted(n for n, q in queryables.items() if q.kind != GEOMETRY))
            raise SearchError(f"sortby: cannot sort by {shown(name)}; sortable: {sortable}")
        order.append(f"{q.column} {direction.upper()}")
    return order


def parse_fields(value: Any) -> tuple[set[str] | None, set[str]]:
    """``fields``: ``a,-b`` (GET) or ``{"include": [...], "exclude": [...]}`` (POST). The
    include set is None when no include was written at all (then an exclude applies to the
    whole item), and empty when it was written empty or null (then to the default set)."""
    include: set[str] | None = None
    exclude: set[str] = set()
    if isinstance(value, str):
        for part in (p.strip() for p in value.split(",") if p.strip()):
            if part.startswith("-"):
                exclude.add(part[1:])
            else:
                include = (include or set()) | {part.lstrip("+")}
    elif isinstance(value, dict) and set(value) <= {"include", "exclude"}:
        for key in ("include", "exclude"):
            names = value.get(key)
            if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
                raise SearchError(f"fields.{key}: a list of field names is needed")
        if "include" in value:
            include = set(value["include"] or [])
        exclude = set(value.get("exclude") or [])
    else:
        raise SearchError("fields: {\"include\": [...], \"exclude\": [...]} is needed")
    names = (include or set()) | exclude
    if len(names) > 200 or any(len(n) > 200 or not n for n in names):
        raise SearchError("fields: too many or too long field names")
    return include, exclude


def _filter_condition(params: dict[str, Any], tr: Translator) -> str | None:
    """The SQL of ``query`` (turned into CQL2 first) or ``filter`` (CQL2-JSON or text),
    checked; None when there is neither."""
    query, cql = params.get("query"), params.get("filter")
    if query not in (None, "", {}) and cql not in (None, "", {}):
        raise SearchError("use either query or filter, not both")
    if query not in (None, "", {}):
        cql = query_to_cql2(_decode_json(query, "query"))
        lang = "cql2-json"
        tr.numeric_strings = True
    else:
        lang = params.get("filter-lang", params.get("filter_lang"))
    if cql not in (None, "", {}):
        crs = params.get("filter-crs")
        if crs is not None and crs not in CRS84:
            raise SearchError(f"filter-crs: only {sorted(CRS84)[0]} (WGS84 longitude, latitude) is supported")
        if lang not in (None, "cql2-json", "cql2-text"):
            raise SearchError(f"filter-lang: {shown(lang)} is neither cql2-json nor cql2-text")
        if isinstance(cql, str):
            stripped = cql.lstrip()
            if lang == "cql2-json" or (lang is None and stripped.startswith("{")):
                cql = _decode_json(cql, "filter")
            else:
                cql = cql2_text_to_json(cql)
        depth, size = _depth_and_size(cql)
        if depth > MAX_FILTER_DEPTH * 3 or size > MAX_FILTER_NODES * 4:
            raise SearchError(f"filter: nested deeper than {MAX_FILTER_DEPTH} levels or too large")
        return tr.expr(cql)
    return None


def parse_search(params: dict[str, Any], queryables: dict[str, Queryable], post: bool = False) -> Search:
    """Check every search parameter (from a GET query string, or a POST body where ``post``)
    and build SQL."""
    if not isinstance(params, dict):
        raise SearchError("the search body must be a JSON object")
    unknown = sorted(set(params) - SEARCH_FIELDS)
    if unknown:
        raise SearchError(f"unknown parameter {shown(unknown[0])}; known: {', '.join(sorted(SEARCH_FIELDS))}")
    if post and isinstance(params.get("bbox"), str):
        raise SearchError("bbox: in a POST body, bbox is an array of numbers, not a string")
    if post and "fields" in params and params["fields"] is None:
        raise SearchError("fields: null is not a fields object; leave it out or send {\"include\": [...]}")
    search = Search()
    tr = Translator(queryables)

    def add(condition: str) -> None:
        search.where.append(condition)

    for name in ("collections", "ids"):
        if params.get(name) not in (None, [], ""):
            values = _string_list(params[name], name)
            if name == "collections":
                add(f"collection IN ({', '.join(tr._bind(v) for v in values)})")
            else:
                add(f"id IN ({', '.join(tr._bind(v) for v in values)})")
    if params.get("bbox") not in (None, "", []):
        if params.get("intersects") is not None:
            raise SearchError("use either bbox or intersects, not both")
        west, south, east, north = parse_bbox(params["bbox"])
        boxes = [(west, south, east, north)] if west <= east else [(west, south, 180, north), (-180, south, east, north)]
        add(" OR ".join(f"({spatial_sql('s_intersects', shapely.box(*b), tr._bind)})" for b in boxes))
    if params.get("intersects") is not None:
        geom = parse_geometry(_decode_json(params["intersects"], "intersects"))
        add(spatial_sql("s_intersects", geom, tr._bind))
    if params.get("datetime") not in (None, ""):
        start, end = parse_datetime_range(params["datetime"])
        if start is not None:
            add(f"dt >= {tr._bind(start)}")
        if end is not None:
            add(f"dt <= {tr._bind(end)}")

    condition = _filter_condition(params, tr)
    if condition is not None:
        add(condition)

    if params.get("sortby") not in (None, "", []):
        search.order = parse_sortby(_decode_json(params["sortby"], "sortby") if str(params["sortby"]).startswith("[")
                                    else params["sortby"], queryables)
    if params.get("fields") is not None:
        fields = params["fields"]
        if isinstance(fields, str) and fields.lstrip().startswith("{"):
            fields = _decode_json(fields, "fields")
        search.fields = True
        search.include, search.exclude = parse_fields(fields)
    if params.get("limit") not in (None, ""):
        search.limit = parse_int(params["limit"], "limit", 1, 10**9)
        search.limit = min(search.limit, MAX_LIMIT)
    if params.get("token") not in (None, ""):
        token = params["token"]
        if not isinstance(token, str) or not re.fullmatch(r"next:\d{1,9}", token):
            raise SearchError("token: not a token of this server; follow the 'next' link as given")
        search.offset = parse_int(token[5:], "token", 0, MAX_OFFSET)
    search.params = tr.params
    return search
