"""Kept heatmap answers (layers.heatmap._kept): a repeat is served without binning again,
and after every kind of write - an intake, a transition, an import, another connection's
insert - the next answer's counts equal a direct count of the incidents."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from layers import get_layer, heatmap
from mapsvc.db import session_scope
from mapsvc.services import incidents as svc
from mapsvc.services.incident_import import import_csv
from tests.fixtures.incidents import ll

VIEWS = [{}, {"state": "open"}, {"category": "road", "class": "minor,ordinary"}]


def _direct_count(engine: sa.Engine, filters: dict, bbox) -> int:
    """The incidents of ``filters`` in ``bbox`` counted by the list's query, not binned."""
    with session_scope(engine) as s:
        return svc.list_incidents(s, filters, bbox=bbox, limit=1)["total"]


class Binnings:
    """Counts the binning statements (``count(*)`` over ``incident i``) an engine runs."""

    def __init__(self, engine: sa.Engine) -> None:
        self.count = 0
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, *args) -> None:
        if "GROUP BY" in statement and "FROM incident AS i" in statement:
            self.count += 1


@pytest.mark.parametrize("bins", ["square", "hex"])
def test_kept_answers_equal_direct_counts_after_every_write(populated, make_app, bins, tmp_path):
    heatmap.BINS_CACHE.clear()
    app = make_app(populated.engine)
    client = app.test_client()
    (x0, y0), (x1, y1) = ll(-100, -100), ll(1100, 700)
    bbox = (x0, y0, x1, y1)
    binned = Binnings(app.extensions["mapsvc.engine"])

    def answers() -> list[int]:
        out = []
        for f in VIEWS:
            args = "".join(f"&{k}={v}" for k, v in f.items())
            r = client.get(f"/api/heatmap?bbox={x0},{y0},{x1},{y1}&zoom=15&bins={bins}{args}")
            assert r.status_code == 200, r.get_data(as_text=True)
            d = r.get_json()
            cells = d.get("points") or d.get("cells") or []
            assert sum(c[2] for c in cells) == d["total"]
            out.append(d["total"])
        return out

    def expected() -> list[int]:
        return [_direct_count(populated.engine, f, bbox) for f in VIEWS]

    first = answers()
    assert first == expected() and first[0] > 0
    before = binned.count
    assert answers() == first  # kept: no binning the second time
    assert binned.count == before

    # an intake through the service
    lon, lat = ll(400, 300)
    with session_scope(populated.engine) as s:
        inc = svc.create_incident(
            s, {"category": "road", "severity": "minor", "lon": lon, "lat": lat}, actor="test"
        )
        new_id = inc.id
    after_intake = answers()
    assert after_intake == expected()
    assert after_intake[0] == first[0] + 1 and after_intake[2] == first[2] + 1

    # transitions through the loop, each its own transaction, the last one closing it
    for state in ("dispatched", "in_hand", "verified", "closed"):
        with session_scope(populated.engine) as s:
            svc.transition(s, new_id, state, actor="test")
        after_transition = answers()
        assert after_transition == expected(), state
    assert after_transition[1] == after_intake[1] - 1

    # a bulk import
    path = tmp_path / "in.csv"
    rows = [f"k{k},{ll(300 + k, 200)[1]},{ll(300 + k, 200)[0]},road," for k in range(5)]
    path.write_text(
        "id,lat,lon,category,opened\n"
        + "\n".join(r + "2026-01-05T08:00:00+08:00" for r in rows)
        + "\n",
        encoding="utf-8",
    )
    with populated.engine.begin() as conn:
        assert import_csv(conn, path).imported == 5
    after_import = answers()
    assert after_import == expected()
    assert after_import[0] == after_transition[0] + 5

    # a plain SQL delete from another connection (no service involved)
    with populated.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM incident WHERE id = :id"), {"id": new_id})
    after_delete = answers()
    assert after_delete == expected()
    assert after_delete[0] == after_import[0] - 1


def test_overdue_views_are_always_binned(populated) -> None:
    """Overdue moves with the clock alone: such a view is never kept."""
    heatmap.BINS_CACHE.clear()
    layer = get_layer("heatmap")
    binned = Binnings(populated.engine)
    with session_scope(populated.engine) as s:
        a = layer.query(s, None, zoom=14, overdue="1")
        b = layer.query(s, None, zoom=14, overdue="1")
    assert a["total"] == b["total"] == _direct_count(populated.engine, {"overdue": "1"}, None)
    assert binned.count == 2
