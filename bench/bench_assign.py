"""Benchmark: ``mapsvc streets assign`` of a district's CSV (goal: 5,000 rows in under 1 s).

One database on the embedded cluster at the latest schema (audit triggers on), with
``--rows`` segments (default 5,000) and 600 staff; half the segments already have a chief,
so the file both gives new posts and replaces holders. Each run assigns the same CSV
twice, each time in a transaction that is rolled back afterwards, alternating the order:

* ours: :func:`mapsvc.services.streets.assign_csv` (references resolved in two
  statements, the posts written set-based by ``assignments.assign_segments``);
* baseline: the same rows the way the CSV was applied before, row by row: look up the
  segment and the staff member, then :func:`mapsvc.services.assignments.assign`.

Both are checked to leave the same history. Prints the medians, the ratio and MET / NOT MET.

    .venv/bin/python bench/bench_assign.py               # 5,000 rows, 3 runs
    .venv/bin/python bench/bench_assign.py --quick       # 1,000 rows, 1 run
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mapsvc.config import PROJECT_ROOT
from mapsvc.db import EmbeddedPostgres, create_database, drop_database, ensure_schema, make_engine
from mapsvc.services import streets
from mapsvc.services.assignments import assign

GOAL_S = 1.0
GOAL_ROWS = 5_000
STAFF = 600


def _database(pg: EmbeddedPostgres, rows: int) -> sa.Engine:
    url = pg.admin_url("mapsvc_bench_assign")
    drop_database(url)
    create_database(url)
    engine = make_engine(url)
    ensure_schema(engine)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO alley_segment (code, name, geom, source) "
                "SELECT 'bench:' || i, '巷' || i, ST_SetSRID(ST_MakeLine("
                "ST_MakePoint(118.5 + (i % 100) * 0.001, 24.9 + (i / 100) * 0.001), "
                "ST_MakePoint(118.5005 + (i % 100) * 0.001, 24.9 + (i / 100) * 0.001)), 4326), "
                "'bench' FROM generate_series(1, :n) AS i"
            ),
            {"n": rows},
        )
        c.execute(
            sa.text(
                "INSERT INTO staff (name, role, code) SELECT '巷长' || i, 'alley_chief', "
                "'chief-' || i FROM generate_series(1, :n) AS i"
            ),
            {"n": STAFF},
        )
        # every other segment already has a chief since New Year
        c.execute(
            sa.text(
                "INSERT INTO assignment (staff_id, role, segment_id, valid_from) "
                "SELECT (SELECT min(id) FROM staff) + (g.id % :s), 'alley_chief', g.id, "
                "DATE '2026-01-01' FROM alley_segment g WHERE g.id % 2 = 0"
            ),
            {"s": STAFF},
        )
    return engine


def _csv(engine: sa.Engine) -> tuple[str, list[tuple[str, str, str | None]]]:
    """A file giving every segment a chief (some of them the holder again) from June."""
    with engine.connect() as c:
        segs = c.scalars(sa.text("SELECT code FROM alley_segment ORDER BY id")).all()
    rows = [(code, f"chief-{(i * 7) % STAFF + 1}", "2026-06-01") for i, code in enumerate(segs)]
    text = "segment,staff,valid_from\n" + "".join(f"{s},{p},{d}\n" for s, p, d in rows)
    return text, rows


def _history(session: Session) -> list[tuple]:
    return [
        tuple(r)
        for r in session.execute(
            sa.text(
                "SELECT g.code, s.code, a.role, a.valid_from, a.valid_to FROM assignment a "
                "JOIN alley_segment g ON g.id = a.segment_id JOIN staff s ON s.id = a.staff_id "
                "ORDER BY 1, 3, 4, 2"
            )
        ).all()
    ]


def _ours(session: Session, text: str, rows: list) -> None:
    streets.assign_csv(session, text)


def _baseline(session: Session, text: str, rows: list) -> None:
    for seg_ref, staff_ref, day in rows:
        seg = streets._find_segment(session, seg_ref)
        staff = streets._find_staff(session, staff_ref)
        assign(session, staff, "alley_chief", segment_id=seg, valid_from=dt.date.fromisoformat(day))


def _timed(
    engine: sa.Engine, fn: Callable[[Session, str, list], None], text: str, rows: list
) -> tuple[float, list[tuple]]:
    with Session(engine) as session:
        t = time.perf_counter()
        fn(session, text, rows)
        session.flush()
        took = time.perf_counter() - t
        history = _history(session)
        session.rollback()
    return took, history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 rows, one run")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--runs", type=int, default=None)
    args = ap.parse_args()
    n = args.rows or (1_000 if args.quick else GOAL_ROWS)
    runs = args.runs or (1 if args.quick else 3)

    pg = EmbeddedPostgres(PROJECT_ROOT / "var")
    pg.start(durable=False)
    engine = _database(pg, n)
    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    try:
        text, rows = _csv(engine)
        for i in range(runs):
            order = [("ours", _ours), ("baseline", _baseline)]
            histories = {}
            for name, fn in order if i % 2 == 0 else reversed(order):
                took, histories[name] = _timed(engine, fn, text, rows)
                times[name].append(took)
                print(f"  run {i + 1} {name:8}: {took:7.3f} s", flush=True)
            assert histories["ours"] == histories["baseline"], "the two left different histories"
    finally:
        url = engine.url
        engine.dispose()
        drop_database(url)

    ours, base = statistics.median(times["ours"]), statistics.median(times["baseline"])
    print()
    print(f"streets assign: {n:,} rows, half replacing a holder; runs {runs} (medians)")
    print(f"  ours (set-based)      {ours:8.3f} s   {n / ours:10,.0f} rows/s")
    print(f"  baseline (row by row) {base:8.3f} s   {n / base:10,.0f} rows/s")
    print(f"  ratio baseline / ours: {base / ours:.1f}x faster; both leave the same history")
    scaled = ours * GOAL_ROWS / n
    met = scaled < GOAL_S
    print(
        f"target: {GOAL_ROWS:,} rows in < {GOAL_S:.0f} s -> measured {scaled:.3f} s"
        + ("" if n == GOAL_ROWS else f" (scaled from {n:,} rows)")
        + f": {'MET' if met else 'NOT MET'}"
    )
    print(
        "load average (1/5/15 min) at the end: "
        + " ".join(f"{v:.1f}" for v in os.getloadavg())
        + f" on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
