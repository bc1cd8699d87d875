"""load_demo as a whole: same seed, same demo; one transaction; progress; the summary."""

from __future__ import annotations

import ast
import datetime as dt

import pytest
import sqlalchemy as sa

from mapsvc import demo
from mapsvc.config import PROJECT_ROOT
from mapsvc.db import make_engine
from mapsvc.models import DERIVED_TABLES, table_names
from tests.conftest import demo_arguments
from tests.core.recording_progress import RecordingProgress

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
INCIDENTS = 500
GRID_DIGEST = "SELECT md5(string_agg(code || ST_AsEWKB(geom)::text, ',' ORDER BY code)) FROM grid"
INCIDENT_DIGEST = (
    "SELECT md5(string_agg(ST_AsEWKB(geom)::text || category || reported_at, ',' ORDER BY id)) "
    "FROM incident"
)


def _digests(engine) -> tuple[str, str, dict[str, int]]:
    with engine.connect() as c:
        counts = {
            t: c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in table_names()
        }
        return (
            c.execute(sa.text(GRID_DIGEST)).scalar(),
            c.execute(sa.text(INCIDENT_DIGEST)).scalar(),
            counts,
        )


@pytest.fixture(scope="module")
def loads(make_database, template_db):
    """Three demos at a fixed now: seeds 11, 11 and 12; the first with a recorded progress."""
    engines = [make_engine(make_database(template=template_db)) for _ in range(3)]
    recorder = RecordingProgress()
    sums = [
        demo.load_demo(
            e,
            **demo_arguments(seed=s, incidents=INCIDENTS),
            now=NOW,
            **({"progress": recorder} if i == 0 else {}),
        )
        for i, (e, s) in enumerate(zip(engines, (11, 11, 12), strict=True))
    ]
    yield engines, sums, recorder
    for e in engines:
        e.dispose()


def test_same_seed_same_demo(loads) -> None:
    engines, sums, _ = loads
    d = [_digests(e) for e in engines]
    assert sums[0] == sums[1]
    assert d[0] == d[1]
    assert d[0][:2] != d[2][:2]
    text = demo.format_summary(sums[0])
    assert "km²" in text and "Vonng/adcode, CC BY 4.0" in text
    assert all(f"{t}" in text for t in sums[0]["counts"])


def test_summary_counts_every_table_and_the_demo_fills_them(loads) -> None:
    engines, sums, _ = loads
    counts = sums[0]["counts"]
    assert tuple(counts) == table_names()
    assert counts == _digests(engines[0])[2]
    # every table holds demo data, except the results kept for speed (filled on demand)
    assert all(n > 0 for t, n in counts.items() if t not in DERIVED_TABLES), counts
    assert all(counts[t] == 0 for t in DERIVED_TABLES), counts
    assert counts["incident"] == INCIDENTS


def test_progress_sees_every_stage_and_every_incident(loads) -> None:
    _, _, recorder = loads
    stages = recorder.bars[0]
    assert (stages.names[0], stages.total, stages.n, stages.closed) == (
        "demo",
        len(demo.STAGES),
        len(demo.STAGES),
        True,
    )
    incidents = [b for b in recorder.bars if b.names[0] == "incidents"]
    assert len(incidents) == 1
    assert (incidents[0].total, incidents[0].n, incidents[0].closed) == (INCIDENTS, INCIDENTS, True)
    names = [s.name for s in demo.STAGES]
    assert len(set(names)) == len(names)


def test_a_failed_load_changes_nothing(loads) -> None:
    """One transaction: a stage failing after others wrote (the incidents, here with no time
    limits) leaves the previous demo exactly as it was."""
    engines, _, _ = loads
    before = _digests(engines[2])
    arguments = {**demo_arguments(seed=13, incidents=INCIDENTS), "time_limits_h": {}}
    with pytest.raises(KeyError):
        demo.load_demo(engines[2], **arguments, now=NOW)
    assert _digests(engines[2]) == before


def test_the_demo_package_imports_no_higher_floor() -> None:
    """mapsvc.demo is domain logic: no CLI, web, layers, Flask or folium, not even inside a
    function (the CLI hands it its progress bar)."""
    banned = ("mapsvc.commands", "mapsvc.web", "mapsvc.cli", "layers", "flask", "folium", "branca")
    found = []
    for path in sorted((PROJECT_ROOT / "mapsvc" / "demo").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
                if node.module == "mapsvc":
                    names = [f"mapsvc.{a.name}" for a in node.names]
            else:
                continue
            found += [
                f"{path.name}: {n}"
                for n in names
                if any(n == b or n.startswith(f"{b}.") for b in banned)
            ]
    assert found == []
