"""Bulk import of incidents from CSV exports of hotline (12345) and 311 systems.

Other systems name their columns and write dates their own way, so a :class:`ColumnMapping`
names the id, latitude, longitude, category, opened, closed, due and status (and optional
class / description / address) columns and the date format; such an export imports without
editing it.

Why it is fast: the file is parsed and checked column-wise with pandas (no Python loop per
row), coordinates are converted to WGS84 vectorised (:mod:`mapsvc.services.chinacrs`), the
good rows go to a temporary staging table with one ``COPY``, and routing plus the insert
into ``incident`` are set-based statements (:func:`mapsvc.services.routing.routed`), so
each incident row is written once, already routed.

Rows with an address and no coordinates (hotline exports have many) are located with the
offline geocoder (:mod:`mapsvc.services.geocode`), each distinct address once; they are
stored with ``located_by`` = the precision class and flagged ``location_to_confirm``. An
address that matches nothing or is ambiguous makes its row bad (column: the address
column, reason: the geocoder's). Rows with coordinates keep them, address or not.

Bad input (rule of the house): every problem is reported per row with the row number (the
file's line number, header = line 1), the column and the reason. By default a file with bad
rows imports nothing; with ``skip_bad`` the good rows are imported and the bad ones are
returned (the CLI writes them, with reasons, to a file). Either way the whole import is one
transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from mapsvc.config import Settings
from mapsvc.core.errors import Conflict, ValidationError
from mapsvc.core.progress import Progress, ProgressBar, closes_bars, no_progress
from mapsvc.core.values import LAT_RANGE, LON_RANGE
from mapsvc.models import EXTERNAL_ID_UNIQUE, SEVERITIES, SOURCES, STATES, Incident
from mapsvc.services.chinacrs import normalize_crs_name, points_to_wgs84
from mapsvc.services.geocode import Geocoded, geocode_many
from mapsvc.services.integrity import translate
from mapsvc.services.routing import (
    ROUTED_COLUMNS,
    CreateTempTable,
    drop_routing,
    prepare_routing,
    routed,
    use_large_temp_buffers,
)

#: external status words -> our states (Chinese hotline words and common 311 ones)
STATUS_WORDS: dict[str, str] = {
    **{s: s for s in STATES},
    "open": "received",
    "new": "received",
    "in progress": "in_hand",
    "in_progress": "in_hand",
    "inhand": "in_hand",
    "受理": "received",
    "已受理": "received",
    "派遣": "dispatched",
    "已派遣": "dispatched",
    "处置": "in_hand",
    "处置中": "in_hand",
    "核查": "verified",
    "已核查": "verified",
    "结案": "closed",
    "已结案": "closed",
    "办结": "closed",
    "退回": "returned",
    "重启": "reopened",
}
SEVERITY_WORDS: dict[str, str] = {
    **{s: s for s in SEVERITIES},
    "小微": "minor",
    "一般": "ordinary",
    "较大": "major",
    "重大": "grave",
}
#: the words exports use for where a report came from, and the service's codes
SOURCE_WORDS: dict[str, str] = {
    **{s: s for s in SOURCES},
    "12345": "hotline",
    "热线": "hotline",
    "12345热线": "hotline",
    "市民热线": "hotline",
    "巡查": "patrol",
    "巡查上报": "patrol",
    "巡查发现": "patrol",
    "居民": "resident",
    "群众": "resident",
    "群众上报": "resident",
    "居民上报": "resident",
}
ACCEPTED_CRS = ("EPSG:4326", "EPSG:4490", "gcj02", "bd09")
COPY_CHUNK = 100_000
#: widths of the text columns a row is checked against (from the model: one definition)
EXTERNAL_ID_MAX = Incident.external_id.type.length
ADDRESS_MAX = Incident.address.type.length
DESCRIPTION_MAX = Incident.description.type.length
#: from this many rows on (and at least the rows already stored), foreign keys are checked
#: once after the insert and indexes rebuilt, rather than per row
BULK_ROWS = 50_000


@dataclass
class ColumnMapping:
    """Which column of the file holds what, and how its dates are written.

    ``date_format`` is a ``strftime`` pattern (e.g. ``%Y/%m/%d %H:%M``) or ``ISO8601``;
    ``timezone`` applies to dates written without an offset (hotline exports use local
    time). ``severity``, ``description``, ``address`` and ``source`` are optional columns;
    a row's ``source`` (a code or a word of :data:`SOURCE_WORDS`) overrides the import's
    one source, and an empty cell keeps it.
    """

    id: str = "id"
    lat: str = "lat"
    lon: str = "lon"
    category: str = "category"
    opened: str = "opened"
    closed: str | None = "closed"
    due: str | None = "due"
    status: str | None = "status"
    severity: str | None = "severity"
    description: str | None = "description"
    address: str | None = "address"
    source: str | None = "source"
    date_format: str = "ISO8601"
    timezone: str | None = None

    @classmethod
    def from_options(cls, spec: str | None = None, file: str | Path | None = None) -> ColumnMapping:
        """Build from a mapping file (JSON object or ``key=value`` lines) and/or a
        ``key=value,key=value`` option; the option wins."""
        values: dict[str, str] = {}
        if file:
            text = Path(file).read_text(encoding="utf-8-sig")
            try:
                loaded = json.loads(text)
                if not isinstance(loaded, dict):
                    raise ValueError
                values.update({str(k): str(v) for k, v in loaded.items()})
            except ValueError:
                values.update(_pairs(text.splitlines(), f"mapping file {file}"))
        if spec:
            values.update(_pairs(spec.split(","), "--map"))
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValidationError(
                f"unknown mapping keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                field="mapping",
            )
        return cls(**values)


def _pairs(items: list[str], where: str) -> dict[str, str]:
    out = {}
    for raw in items:
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        sep = "=" if "=" in item else (":" if ":" in item else None)
        if sep is None:
            raise ValidationError(f"{where}: expected key=value, got {item!r}", field="mapping")
        k, v = item.split(sep, 1)
        out[k.strip()] = v.strip()
    return out


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    bad: list[dict[str, Any]] = field(default_factory=list)
    bad_rows: int = 0
    to_confirm: int = 0
    routed_to_segment: int = 0
    #: imported rows located from their address, per precision class (see geocode)
    located_by: dict[str, int] = field(default_factory=dict)
    #: exact points shared by many rows (``{"lon", "lat", "rows"}``, most rows first):
    #: a fallback location of the source system, its rows flagged to confirm
    fallback_points: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bad"] = self.bad[:1000]
        return d


class ImportRejected(ValidationError):
    """The file has bad rows and ``skip_bad`` was not given: nothing was imported."""

    def __init__(self, result: ImportResult) -> None:
        first = "; ".join(f"row {b['row']} {b['column']}: {b['reason']}" for b in result.bad[:5])
        super().__init__(
            f"{result.bad_rows} of {result.rows} rows are bad; nothing was imported "
            f"(first: {first})",
            bad=result.bad[:1000],
        )
        self.result = result


def read_and_check(
    path: str | Path,
    mapping: ColumnMapping,
    crs: str,
    categories: set[str],
    *,
    encoding: str = "utf-8-sig",
    settings: Settings | None = None,
    now: dt.datetime | None = None,
) -> tuple[Any, list[dict[str, Any]], int]:
    """Parse and check the file column-wise; return (good rows DataFrame, problems, rows).

    The DataFrame has columns row, external_id, category, severity, state, lon, lat (WGS84)
    and reported/closed/due as Unix seconds. Checks that need the database (outside the
    district, ids already imported, addresses) happen later in :func:`import_csv`.

    A row with both coordinate cells empty and an address is not bad: it is to be located
    by address. Its lon/lat are NaN and ``attrs["by_address"]`` lists (row numbers,
    addresses) of all such rows (None when there are none), so a file of coordinates only
    costs nothing more.
    """
    import numpy as np
    import pandas as pd

    settings = settings or Settings()
    crs_name = normalize_crs_name(crs)
    if crs_name not in ("gcj02", "bd09") and str(crs_name).upper() not in (
        "EPSG:4326",
        "EPSG:4490",
    ):
        raise ValidationError(
            f"--crs must be one of {', '.join(ACCEPTED_CRS)}; got {crs!r}", field="crs"
        )
    try:
        df = pd.read_csv(
            path, dtype=str, keep_default_na=False, encoding=encoding, skipinitialspace=True
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValidationError(f"{path}: cannot read as CSV ({exc})", field="file") from None
    required = {"id": mapping.id, "lat": mapping.lat, "lon": mapping.lon}
    required |= {"category": mapping.category, "opened": mapping.opened}
    missing = [f"{k} (column {v!r})" for k, v in required.items() if v not in df.columns]
    if missing:
        raise ValidationError(
            f"{path}: missing columns {', '.join(missing)}; the file has: "
            f"{', '.join(df.columns[:30])}. Name them with --map or a mapping file.",
            field="mapping",
        )
    n = len(df)
    row_no = np.arange(2, n + 2)
    problems: list[tuple[np.ndarray, str, str, Any]] = []  # (mask, column, reason, values)

    def flag(mask: Any, column: str, reason: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            problems.append((mask, column, reason, df[column].to_numpy() if column in df else None))

    col = df.get
    ext = col(mapping.id).str.strip()
    flag(ext == "", mapping.id, "missing id")
    flag(ext.duplicated(keep="first") & (ext != ""), mapping.id, "duplicate id in the file")
    lon_s, lat_s = col(mapping.lon).str.strip(), col(mapping.lat).str.strip()
    lon = pd.to_numeric(lon_s, errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(lat_s, errors="coerce").to_numpy(dtype=float)
    # free text kept with the incident (hotline exports carry the caller's words); PostgreSQL
    # text cannot hold NUL, and the column widths come from the model
    flag(
        ext.str.len() > EXTERNAL_ID_MAX, mapping.id, f"id longer than {EXTERNAL_ID_MAX} characters"
    )
    flag(ext.str.contains("\x00", regex=False), mapping.id, "contains a NUL character")
    texts: dict[str, Any] = {}
    for key, limit in (("description", DESCRIPTION_MAX), ("address", ADDRESS_MAX)):
        name = getattr(mapping, key)
        if not name or name not in df.columns:
            continue
        texts[key] = df[name].str.strip()
        flag(texts[key].str.contains("\x00", regex=False), name, "contains a NUL character")
        flag(texts[key].str.len() > limit, name, f"longer than {limit} characters")
    # rows with an address and no coordinate at all are located by the geocoder later
    # (import_csv); a row with coordinates keeps them, even when it also has an address
    by_address = np.zeros(n, dtype=bool)
    if "address" in texts:
        by_address = ((lon_s == "") & (lat_s == "") & (texts["address"] != "")).to_numpy()
    flag((lon_s == "") & ~by_address, mapping.lon, "missing coordinate")
    flag((lat_s == "") & ~by_address, mapping.lat, "missing coordinate")
    flag((lon_s != "") & ~np.isfinite(lon), mapping.lon, "unparsable coordinate")
    flag((lat_s != "") & ~np.isfinite(lat), mapping.lat, "unparsable coordinate")
    for values, name, what, (low, high) in (
        (lon, mapping.lon, "longitude", LON_RANGE),
        (lat, mapping.lat, "latitude", LAT_RANGE),
    ):
        flag(
            np.isfinite(values) & ((values < low) | (values > high)),
            name,
            f"{what} out of range {low:g}..{high:g}",
        )
    cat = col(mapping.category).str.strip()
    flag(cat == "", mapping.category, "missing category")
    flag((cat != "") & ~cat.isin(categories), mapping.category, "unknown category")

    now = now or dt.datetime.now(dt.UTC)
    now_s = now.timestamp() + 300  # five minutes of clock skew allowed

    def seconds(column: str | None, required: bool) -> np.ndarray:
        if not column or column not in df.columns:
            return np.full(n, np.nan)
        s = df[column].str.strip()
        fmt = None if mapping.date_format.upper() == "ISO8601" else mapping.date_format
        try:
            t = pd.to_datetime(s, format=fmt or "ISO8601", errors="coerce")
        except (ValueError, TypeError):  # mixed UTC offsets in one column
            t = pd.to_datetime(s, format=fmt or "ISO8601", errors="coerce", utc=True)
        if not isinstance(t.dtype, pd.DatetimeTZDtype):
            t = t.dt.tz_localize(
                mapping.timezone or settings.timezone, ambiguous="NaT", nonexistent="NaT"
            )
        secs = (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=float)
        if required:
            flag(s == "", column, "missing date")
        flag((s != "") & np.isnan(secs), column, f"unparsable date (format {mapping.date_format})")
        flag(secs > now_s, column, "date in the future")
        return secs

    opened = seconds(mapping.opened, True)
    closed = seconds(mapping.closed, False)
    due = seconds(mapping.due, False)
    if mapping.closed and mapping.closed in df.columns:
        flag(closed < opened, mapping.closed, "closed before opened")
    if mapping.status and mapping.status in df.columns:
        st_raw = df[mapping.status].str.strip()
        state = st_raw.str.lower().map(STATUS_WORDS)
        state = state.where(st_raw != "")  # empty status: derived from the closed date
        state = state.fillna(pd.Series(np.where(np.isnan(closed), "received", "closed")))
        flag(
            (st_raw != "") & ~st_raw.str.lower().isin(STATUS_WORDS),
            mapping.status,
            "unknown status",
        )
        flag(
            (state == "closed").to_numpy() & np.isnan(closed),
            mapping.status,
            "closed without a closed date",
        )
    else:
        state = pd.Series(np.where(np.isnan(closed), "received", "closed"))
    if mapping.severity and mapping.severity in df.columns:
        sev_raw = df[mapping.severity].str.strip()
        sev = sev_raw.str.lower().map(SEVERITY_WORDS)
        flag((sev_raw != "") & sev.isna(), mapping.severity, "unknown class")
    else:
        sev = pd.Series([None] * n, dtype=object)
    if mapping.source and mapping.source in df.columns:
        src_raw = df[mapping.source].str.strip()
        src = src_raw.str.lower().map(SOURCE_WORDS)
        flag(
            (src_raw != "") & src.isna(),
            mapping.source,
            f"unknown source (known: {', '.join(SOURCES)} or 12345, 热线, 巡查, 群众)",
        )
    else:
        src = pd.Series([None] * n, dtype=object)

    bad_mask = np.zeros(n, dtype=bool)
    bad: list[dict[str, Any]] = []
    for mask, column, reason, values in problems:
        bad_mask |= mask
        idx = np.flatnonzero(mask)
        bad.extend(
            {"row": int(row_no[i]), "column": column, "reason": reason, "value": values[i]}
            for i in idx
        )
    good = ~bad_mask
    if by_address.any():
        # only the rows with coordinates are converted; the geocoded ones are WGS84 already
        x, y = np.full(int(good.sum()), np.nan), np.full(int(good.sum()), np.nan)
        has_xy = ~by_address[good]
        x[has_xy], y[has_xy] = points_to_wgs84(
            lon[good & ~by_address], lat[good & ~by_address], crs_name
        )
    else:
        x, y = points_to_wgs84(lon[good], lat[good], crs_name)
    limits = {k: float(v) * 3600 for k, v in dict(settings.incident_time_limit_hours).items()}
    out = pd.DataFrame(
        {
            "id": row_no[good],
            "external_id": ext[good].to_numpy(),
            "category": cat[good].to_numpy(),
            "severity": sev[good].to_numpy(),
            "state": state[good].to_numpy(),
            "source": src[good].to_numpy(),
            "lon": x,
            "lat": y,
            "reported": opened[good],
            "closed": closed[good],
            "due": due[good],
            # "" -> None (NULL); absent columns stay NULL
            **{
                key: _none_if_empty(texts[key][good]) if key in texts else None
                for key in ("description", "address")
            },
        }
    )
    out.attrs["limits"] = limits
    # every row to locate by address (bad ones too, so their address problems are reported)
    out.attrs["by_address"] = (
        (row_no[by_address], texts["address"][by_address].to_numpy()) if by_address.any() else None
    )
    out.attrs["source_crs"] = "EPSG:4326" if crs_name is None else str(crs_name)
    return out, bad, n


#: fixed-width part of a staging row in PostgreSQL's binary COPY format (big-endian):
#: field count, then (length, value) per field; the external id, description and address
#: follow as text
_ROW = [
    ("nfields", ">i2"),
    *[
        pair
        for name, typ in (
            ("id", ">i8"),
            ("lon", ">f8"),
            ("lat", ">f8"),
            ("reported", ">f8"),
            ("closed", ">f8"),
            ("due", ">f8"),
            ("category", ">i2"),
            ("severity", ">i2"),
            ("state", ">i2"),
            ("source", ">i2"),
        )
        for pair in ((f"{name}_len", ">i4"), (name, typ))
    ],
]
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2


def _binary_rows(df: Any, codes: dict[str, list[str]]) -> list[bytes]:
    """The staging rows as binary COPY chunks, built column-wise with numpy.

    Text-formatting a million rows (``DataFrame.to_csv``) took 6-9 s; this takes well
    under one. Category, class, state and source travel as small integer codes (index + 1 into
    ``codes``; 0 is NULL), times as float seconds (NaN is NULL), and the external id,
    description and address as the variable-length tail of each row.
    """
    import numpy as np

    n = len(df)
    dtype = np.dtype(_ROW)
    arr = np.zeros(n, dtype=dtype)
    arr["nfields"] = 13
    for name, _typ in _ROW[1:]:
        if name.endswith("_len"):
            arr[name] = np.dtype(dict(_ROW)[name[:-4]]).itemsize
    arr["id"] = df["id"].to_numpy()
    for col in ("lon", "lat", "reported", "closed", "due"):
        arr[col] = df[col].to_numpy(dtype=float)
    for col in ("category", "severity", "state", "source"):
        lookup = {v: k + 1 for k, v in enumerate(codes[col])}
        arr[col] = [lookup.get(v, 0) for v in df[col].to_numpy()]
    fixed = arr.tobytes()
    width = dtype.itemsize
    # variable part of each row: external id, description, address as (length, UTF-8), or
    # length -1 for NULL; a file without text columns adds the same two NULLs to each row
    null = b"\xff\xff\xff\xff"
    var = [_text_field(str(e)) for e in df["external_id"].to_numpy()]
    for col in ("description", "address"):
        values = df[col].to_numpy()
        if df[col].notna().any():
            var = [
                v + (_text_field(t) if isinstance(t, str) else null)
                for v, t in zip(var, values, strict=True)
            ]
        else:
            var = [v + null for v in var]
    chunks: list[bytes] = []
    for start in range(0, n, COPY_CHUNK):
        parts = []
        for i in range(start, min(n, start + COPY_CHUNK)):
            parts.append(fixed[i * width : (i + 1) * width])
            parts.append(var[i])
        chunks.append(b"".join(parts))
    return chunks


@contextmanager
def _ids_taken_meanwhile() -> Iterator[None]:
    """An id the database checks found free but a concurrent intake (another import, the
    API, Open311) stored before this insert: a 409 naming it, and nothing is imported."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        detail = (getattr(getattr(exc.orig, "diag", None), "message_detail", None) or "").strip()
        raise translate(
            exc,
            {
                EXTERNAL_ID_UNIQUE: Conflict(
                    "an id of the file was stored meanwhile by another intake "
                    f"({detail or 'external_id already exists'}); nothing was imported, "
                    "run the import again to see which rows are already there",
                    field="id",
                )
            },
        ) from None


def _none_if_empty(s: Any) -> Any:
    """Object array of a string Series with "" as None (NULL in the database)."""
    out = s.to_numpy(dtype=object)
    out[out == ""] = None
    return out


def _text_field(value: str) -> bytes:
    b = value.encode()
    return len(b).to_bytes(4, "big") + b


def _copy_staging(conn: Connection, df: Any, bar: ProgressBar) -> None:
    """COPY the checked rows into the temporary staging table (binary, in chunks).

    ``_import_raw`` holds what was sent; ``_import_stage`` is a view with the codes turned
    back into text and NaN times into NULL, which is what the later statements read.
    """
    codes = {
        "category": sorted(set(df["category"])),
        "severity": list(SEVERITIES),
        "state": list(STATES),
        "source": list(SOURCES),
    }
    conn.execute(
        sa.text(
            """CREATE TEMP TABLE _import_raw (
                id bigint, lon float8, lat float8, reported float8, closed float8,
                due float8, category int2, severity int2, state int2, source int2,
                external_id text,
                description text, address text
            ) ON COMMIT DROP"""
        )
    )
    lit = {
        k: "ARRAY[" + ",".join(_sql_str(v) for v in vals) + "]::text[]" for k, vals in codes.items()
    }
    conn.execute(
        sa.text(
            f"""CREATE TEMP VIEW _import_stage AS
            SELECT id, external_id, ({lit["category"]})[NULLIF(category, 0)] AS category,
                   ({lit["severity"]})[NULLIF(severity, 0)] AS severity,
                   ({lit["state"]})[NULLIF(state, 0)] AS state,
                   ({lit["source"]})[NULLIF(source, 0)] AS source, lon, lat,
                   NULLIF(reported, 'NaN') AS reported, NULLIF(closed, 'NaN') AS closed,
                   NULLIF(due, 'NaN') AS due, description, address
            FROM _import_raw"""
        )
    )
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        with cur.copy("COPY _import_raw FROM STDIN (FORMAT binary)") as cp:
            cp.write(_COPY_HEADER)
            sent = 0
            for chunk in _binary_rows(df, codes):
                cp.write(chunk)
                step = min(COPY_CHUNK, len(df) - sent)
                sent += step
                bar.update(step)
            cp.write(b"\xff\xff")
    conn.execute(sa.text("ANALYZE _import_raw"))


def _locate_by_address(
    conn: Connection, df: Any, column: str, bad: list[dict[str, Any]], progress: Progress
) -> tuple[Any, dict[int, tuple[Geocoded, str]]]:
    """Geocode the rows :func:`read_and_check` listed in ``df.attrs["by_address"]``.

    Each distinct address is looked up once (:func:`geocode_many`). A located row that
    passed the other checks gets the point in ``df``; one whose address matches nothing
    or is ambiguous is appended to ``bad`` (row, ``column``, the geocoder's reason) and
    dropped from ``df``. Returns ``df`` and {row number: (Geocoded, address as written)}
    of the rows kept.
    """
    import numpy as np

    rows, addresses = df.attrs["by_address"]
    found = geocode_many(conn, addresses, field=column, progress=progress)
    ids = df["id"].to_numpy()  # file row numbers, ascending
    pos = np.minimum(np.searchsorted(ids, rows), max(len(ids) - 1, 0))
    present = (pos < len(ids)) & (ids[pos] == rows) if len(ids) else np.zeros(len(rows), bool)
    lon, lat = df["lon"].to_numpy(copy=True), df["lat"].to_numpy(copy=True)
    keep = np.ones(len(df), dtype=bool)
    located: dict[int, tuple[Geocoded, str]] = {}
    for row, address, p, here in zip(
        rows.tolist(), addresses.tolist(), pos.tolist(), present.tolist(), strict=True
    ):
        g = found[address]
        if isinstance(g, str):
            bad.append({"row": int(row), "column": column, "reason": g, "value": address})
            if here:
                keep[p] = False
        elif here:
            lon[p], lat[p] = g.lon, g.lat
            located[int(row)] = (g, str(address))
    attrs = dict(df.attrs)
    df = df.assign(lon=lon, lat=lat)
    if not keep.all():
        df = df[keep].reset_index(drop=True)
    df.attrs.update(attrs)
    return df, located


def _copy_located(conn: Connection, df: Any, located: dict[int, tuple[Geocoded, str]]) -> None:
    """``_import_geo``: per row located by address, how (precision), the address as
    written and the note of its intake event (what matched)."""
    conn.execute(
        sa.text(
            """CREATE TEMP TABLE _import_geo (
                id bigint PRIMARY KEY, external_id text, located_by text, address text,
                note text) ON COMMIT DROP"""
        )
    )
    ext = dict(zip(df["id"].tolist(), df["external_id"].tolist(), strict=True))
    raw = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy("COPY _import_geo FROM STDIN") as cp:
        for row, (g, address) in located.items():
            cp.write_row(
                (
                    row,
                    ext[row],
                    g.precision,
                    address,
                    f"imported; located from the address ({g.precision}: {g.matched})",
                )
            )
    conn.execute(sa.text("ANALYZE _import_geo"))


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


@contextmanager
def _bulk_insert_mode(
    conn: Connection, tables: tuple[str, ...], rebuild_indexes: bool
) -> Iterator[None]:
    """Check foreign keys once after a bulk insert, and optionally rebuild indexes after it.

    This is PostgreSQL's own advice for populating a table ("Populating a Database"):
    per-row foreign-key triggers cost more than the rest of a bulk insert (measured: 17 µs
    of 30 µs per incident row), and adding a constraint back checks all rows with one join.
    Plain indexes (not those behind a primary key or unique constraint) are dropped and
    rebuilt only when ``rebuild_indexes`` (the import at least doubles the table), since a
    rebuild costs in proportion to the whole table. Everything happens in the caller's
    transaction: if a check fails, nothing changes. The price: dropping a constraint locks
    ``incident`` exclusively until the import commits, so readers wait for a big import
    (about a minute per million rows) instead of seeing it half done.
    """
    fks = conn.execute(
        sa.text(
            """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            FROM pg_constraint WHERE contype = 'f'
              AND conrelid = ANY(CAST(:tables AS regclass[]))"""
        ),
        {"tables": list(tables)},
    ).all()
    indexes = []
    if rebuild_indexes:
        indexes = conn.execute(
            sa.text(
                """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                FROM pg_index i
                WHERE i.indrelid = ANY(CAST(:tables AS regclass[]))
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)"""
            ),
            {"tables": list(tables)},
        ).all()
    for table, name, _ in fks:
        conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for name, _ in indexes:
        conn.execute(sa.text(f"DROP INDEX {name}"))
    yield
    for _, definition in indexes:
        conn.execute(sa.text(definition))
    for table, name, definition in fks:
        conn.execute(sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))


def _flag_fallback_points(conn: Connection, min_rows: int) -> list[dict[str, Any]]:
    """Flag to confirm the staged rows whose exact point ``min_rows`` or more rows share.

    A hotline system that has no location for a call often stores a fixed point (the city
    centre, the centre's office): 13 % of one real city's export sat on one coordinate.
    Stored as precise, they would draw a hotspot where nothing happened. A point shared
    exactly (to the file's last digit) by that many separate reports is such a fallback;
    its rows are imported, routed as usual, and flagged ``location_to_confirm`` for a
    planner, and the point is reported with its count. ``min_rows`` below 2 turns it off.
    """
    if min_rows < 2:
        return []
    points = conn.execute(
        sa.text(
            "SELECT lon, lat, count(*) AS n FROM _import_stage GROUP BY lon, lat "
            "HAVING count(*) >= :k ORDER BY n DESC, lon, lat"
        ),
        {"k": min_rows},
    ).all()
    if not points:
        return []
    conn.execute(
        sa.text(
            "UPDATE _import_routed r SET location_to_confirm = TRUE FROM _import_stage s "
            "JOIN unnest(CAST(:lon AS float8[]), CAST(:lat AS float8[])) AS f(lon, lat) "
            "ON s.lon = f.lon AND s.lat = f.lat WHERE r.id = s.id"
        ),
        {"lon": [p[0] for p in points], "lat": [p[1] for p in points]},
    )
    return [{"lon": float(p[0]), "lat": float(p[1]), "rows": int(p[2])} for p in points]


@closes_bars
def import_csv(
    conn: Connection,
    path: str | Path,
    *,
    crs: str = "EPSG:4326",
    mapping: ColumnMapping | None = None,
    skip_bad: bool = False,
    settings: Settings | None = None,
    encoding: str = "utf-8-sig",
    source: str = "hotline",
    actor: str | None = None,
    progress: Progress = no_progress,
) -> ImportResult:
    """Import incidents from a CSV file inside the caller's transaction.

    Raises :class:`ImportRejected` (nothing imported) when rows are bad and ``skip_bad`` is
    False. The caller commits; on any exception it must roll back. ``progress``
    (:mod:`mapsvc.core.progress`) shows the stages: "read" (the rows read), "geocode"
    (one step per distinct address, only when some rows have no coordinates), then one
    bar of the good rows named "copy", "route" and "insert" in turn, as a million rows
    take half a minute.
    """
    settings = settings or Settings()
    mapping = mapping or ColumnMapping()
    result = ImportResult()
    t0 = time.perf_counter()
    use_large_temp_buffers(conn)  # before the first temporary table of this session
    categories = set(conn.scalars(sa.text("SELECT code FROM incident_category")))
    with progress(desc="read", unit="rows") as bar:
        df, bad, n = read_and_check(
            path, mapping, crs, categories, encoding=encoding, settings=settings
        )
        bar.update(n)
    result.rows, result.bad = n, bad
    result.seconds["read_check"] = time.perf_counter() - t0
    located: dict[int, tuple[Geocoded, str]] = {}
    if df.attrs.get("by_address") is not None:
        t = time.perf_counter()
        df, located = _locate_by_address(conn, df, str(mapping.address), result.bad, progress)
        result.seconds["geocode"] = time.perf_counter() - t
    bar = progress(total=len(df), desc="copy", unit="rows")  # closed by @closes_bars
    t = time.perf_counter()
    _copy_staging(conn, df, bar)
    if located:
        _copy_located(conn, df, located)
    result.seconds["copy"] = time.perf_counter() - t

    # database checks: ids already imported, positions outside the district
    t = time.perf_counter()
    bar.set_description("route")
    segmax = float(settings.incident_segment_max_m)
    stage = sa.table("_import_stage", sa.column("id"), sa.column("lon"), sa.column("lat"))
    prepare_routing(
        conn,
        sa.select(
            stage.c.id,
            sa.func.ST_SetSRID(sa.func.ST_MakePoint(stage.c.lon, stage.c.lat), 4326).label("geom"),
        ),
        segment_max_m=segmax,
        boundary_confirm_m=float(settings.incident_boundary_confirm_m),
    )
    conn.execute(CreateTempTable("_import_routed", routed(segmax)))
    drop_routing(conn)
    if located:  # a point found from an address is always confirmed by a planner
        conn.execute(
            sa.text(
                "UPDATE _import_routed r SET location_to_confirm = TRUE "
                "FROM _import_geo g WHERE g.id = r.id"
            )
        )
    result.fallback_points = _flag_fallback_points(conn, int(settings.incident_fallback_rows))
    result.seconds["route"] = time.perf_counter() - t
    t = time.perf_counter()
    db_bad = conn.execute(
        sa.text(
            """SELECT s.id, 'id' AS col, 'id already imported' AS reason, s.external_id AS v
            FROM _import_stage s JOIN incident i ON i.external_id = s.external_id
            UNION ALL
            SELECT s.id, 'lat/lon', 'outside the district',
                   concat_ws(' ', s.lon::text, s.lat::text)
            FROM _import_stage s JOIN _import_routed r ON r.id = s.id
            WHERE r.grid_id IS NULL AND NOT EXISTS (
                SELECT 1 FROM district d
                WHERE ST_Intersects(d.geom, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326)))"""
        )
    ).all()
    column_names = {"id": mapping.id, "lat/lon": f"{mapping.lat}/{mapping.lon}"}
    result.bad.extend(
        {"row": int(r[0]), "column": column_names[r[1]], "reason": r[2], "value": r[3]}
        for r in db_bad
    )
    result.bad.sort(key=lambda b: b["row"])
    bad_rows = sorted({b["row"] for b in result.bad})
    result.bad_rows = len(bad_rows)
    result.seconds["db_checks"] = time.perf_counter() - t
    if result.bad and not skip_bad:
        raise ImportRejected(result)

    t = time.perf_counter()
    bar.set_description("insert")
    limits = df.attrs["limits"]
    routed_cols = ", ".join(ROUTED_COLUMNS)
    r_cols = ", ".join(f"r.{c}" for c in ROUTED_COLUMNS)
    actor = actor or f"import:{Path(path).name}"
    # Bulk mode re-checks foreign keys and rebuilds indexes over the *whole* table, so it
    # pays only when the file is large and at least as big as what is already stored
    # (60,000 rows into 1,000,000: per-row checks 2 s, bulk mode 10 s, measured).
    bulk = nullcontext()
    existing = conn.scalar(
        sa.text("SELECT reltuples FROM pg_class WHERE oid = 'incident'::regclass")
    )
    if len(df) >= max(BULK_ROWS, existing or 0):
        bulk = _bulk_insert_mode(conn, ("incident", "incident_event"), rebuild_indexes=True)
    # rows located by address: their address, located_by and WGS84 (the gazetteer's CRS)
    # come from _import_geo; a file of coordinates only keeps the plain statement
    geo_cols, geo_vals, geo_join, geo_ret, geo_note = "", ":crs, s.address", "", "", "'imported'"
    if located:
        geo_cols = ", located_by"
        geo_vals = (
            "CASE WHEN g.id IS NULL THEN :crs ELSE 'EPSG:4326' END, "
            "COALESCE(g.address, s.address), COALESCE(g.located_by, 'coordinates')"
        )
        geo_join = "LEFT JOIN _import_geo g ON g.id = s.id"
        geo_ret = ", external_id"
        geo_note = (
            "COALESCE((SELECT g.note FROM _import_geo g "
            "WHERE g.external_id = ins.external_id), 'imported')"
        )
    with bulk, _ids_taken_meanwhile():
        res = conn.execute(
            sa.text(
                f"""WITH ins AS (
              INSERT INTO incident (external_id, source, category, severity, state, geom,
                  source_crs, address{geo_cols}, description, reported_at, closed_at, due_at,
                  {routed_cols})
              SELECT s.external_id, COALESCE(s.source, :source), s.category,
                     COALESCE(s.severity, c.default_severity, 'ordinary'), s.state,
                     ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326), {geo_vals}, s.description,
                     to_timestamp(s.reported), to_timestamp(s.closed),
                     COALESCE(to_timestamp(s.due), to_timestamp(s.reported) + make_interval(
                        secs => (CAST(:limits AS jsonb) ->>
                                 COALESCE(s.severity, c.default_severity, 'ordinary'))::float8)),
                     {r_cols}
              FROM _import_stage s JOIN _import_routed r ON r.id = s.id
              JOIN incident_category c ON c.code = s.category {geo_join}
              WHERE s.id <> ALL(:bad)
              ORDER BY s.id
              RETURNING id, state, reported_at{geo_ret}
            )
            INSERT INTO incident_event (incident_id, from_state, to_state, actor, at, note)
            SELECT id, NULL, state, :actor, reported_at, {geo_note} FROM ins"""
            ),
            {
                "source": source,
                "crs": df.attrs["source_crs"],
                "limits": json.dumps(limits),
                "bad": bad_rows,
                "actor": actor[:100],
            },
        )
    result.imported = res.rowcount
    counts = conn.execute(
        sa.text(
            """SELECT count(*) FILTER (WHERE location_to_confirm),
                      count(*) FILTER (WHERE segment_id IS NOT NULL)
               FROM _import_routed WHERE id <> ALL(:bad)"""
        ),
        {"bad": bad_rows},
    ).one()
    result.to_confirm, result.routed_to_segment = int(counts[0]), int(counts[1])
    skipped = set(bad_rows)
    for row, (g, _) in located.items():
        if row not in skipped:
            result.located_by[g.precision] = result.located_by.get(g.precision, 0) + 1
    conn.execute(sa.text("DROP VIEW IF EXISTS _import_stage"))
    conn.execute(sa.text("DROP TABLE IF EXISTS _import_raw, _import_routed, _import_geo"))
    result.seconds["insert"] = time.perf_counter() - t
    result.seconds["total"] = time.perf_counter() - t0
    return result


def write_bad_rows(
    path: str | Path, source: str | Path, bad: list[dict[str, Any]], *, encoding: str = "utf-8-sig"
) -> int:
    """Write the bad rows of ``source`` with their reasons to ``path``; return the count.

    Each bad row appears once, with all its problems joined in ``_reasons`` and its line
    number in ``_row``, so it can be fixed and re-imported as it is.
    """
    import pandas as pd

    by_row: dict[int, list[str]] = {}
    for b in bad:
        by_row.setdefault(b["row"], []).append(f"{b['column']}: {b['reason']}")
    df = pd.read_csv(source, dtype=str, keep_default_na=False, encoding=encoding)
    rows = sorted(by_row)
    out = df.iloc[[r - 2 for r in rows]].copy()
    out.insert(0, "_row", rows)
    out.insert(1, "_reasons", ["; ".join(by_row[r]) for r in rows])
    out.to_csv(path, index=False, encoding="utf-8")
    return len(rows)
