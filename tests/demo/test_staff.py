"""Stage staff: people and posts of the session's demo."""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from tests.demo.conftest import q


def _current(conn, role: str, target: str) -> dict[int, list[int]]:  # noqa: ANN001
    out: dict[int, list[int]] = defaultdict(list)
    for staff_id, tid in q(
        conn,
        f"""SELECT staff_id, {target}_id FROM assignment WHERE role = :r AND {target}_id IS NOT NULL
            AND valid_from <= current_date AND (valid_to IS NULL OR valid_to >= current_date)""",
        r=role,
    ):
        out[staff_id].append(tid)
    return out


def test_chiefs_hold_contiguous_groups(conn) -> None:  # noqa: ANN001
    chiefs = _current(conn, "alley_chief", "segment")
    ends = {
        sid: (a, b)
        for sid, a, b in q(
            conn,
            """SELECT id, ST_AsText(ST_SnapToGrid(ST_StartPoint(geom), 1e-7)),
                      ST_AsText(ST_SnapToGrid(ST_EndPoint(geom), 1e-7)) FROM alley_segment""",
        )
    }
    assert len(chiefs) > 50
    held = [s for segs in chiefs.values() for s in segs]
    assert len(held) == len(set(held)), "one chief per segment"
    for staff_id, segs in chiefs.items():
        assert 5 <= len(segs) <= 30, (staff_id, len(segs))
        g = nx.Graph()
        for s in segs:
            g.add_edge(*ends[s])
        assert nx.is_connected(g), f"chief {staff_id}'s segments are not contiguous"
    without = len(ends) - len(held)
    print(f"{len(chiefs)} chiefs, {without} of {len(ends)} segments without a chief")
    assert 0 < without < 0.05 * len(ends)
    deputies = _current(conn, "deputy_chief", "segment")
    assert deputies and all(len(v) >= 5 for v in deputies.values())


def test_staff_in_every_role(conn) -> None:  # noqa: ANN001
    roles = dict(q(conn, "SELECT role, count(*) FROM staff GROUP BY role").all())
    for role in ("community_worker", "grid_head", "grid_member", "alley_chief", "deputy_chief"):
        assert roles.get(role, 0) > 0, role
    kinds = {
        k for (k,) in q(conn, "SELECT DISTINCT dispatched_kind FROM staff WHERE role='dispatched'")
    }
    assert {"police", "city_management", "doctor", "mediator", "lawyer"} <= kinds
    bad_phone = q(
        conn, r"SELECT count(*) FROM staff WHERE phone !~ '^1[3-9]\d-0000-\d{4}$'"
    ).scalar()
    assert bad_phone == 0
    assert q(conn, "SELECT count(DISTINCT phone) = count(*) FROM staff").scalar()
    heads = _current(conn, "grid_head", "grid")
    per_grid = defaultdict(int)
    for grids in heads.values():
        for g in grids:
            per_grid[g] += 1
    n_grids = q(conn, "SELECT count(*) FROM grid").scalar()
    assert len(per_grid) == n_grids and set(per_grid.values()) == {1}
    members = defaultdict(int)
    for grids in _current(conn, "grid_member", "grid").values():
        for g in grids:
            members[g] += 1
    short = sum(1 for g in range(1, n_grids + 1) if members.get(g, 0) < 2)
    print(f"{short} of {n_grids} grids have fewer than 2 members")
    assert 0 < short < 0.1 * n_grids
    history = q(conn, "SELECT count(*) FROM assignment WHERE valid_to < current_date").scalar()
    assert history > 0, "some posts changed hands (history kept)"
    assert q(conn, "SELECT max(valid_from) < current_date FROM assignment").scalar()
