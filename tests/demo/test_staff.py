"""Stage staff: people and posts of the session's demo."""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

from tests.fixtures.demo import q, rounds_to


def _current(conn, role: str, target: str) -> dict[int, list[int]]:
    out: dict[int, list[int]] = defaultdict(list)
    for staff_id, tid in q(
        conn,
        f"""SELECT staff_id, {target}_id FROM assignment WHERE role = :r AND {target}_id IS NOT NULL
            AND valid_from <= current_date AND (valid_to IS NULL OR valid_to >= current_date)""",
        r=role,
    ):
        out[staff_id].append(tid)
    return out


def test_chiefs_hold_contiguous_groups(conn) -> None:
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


def test_staff_in_every_role(conn) -> None:
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


def test_readme_staff_figures(conn) -> None:
    """README: ≈ 2,600 staff, 9,000 assignments (2,550 <= staff < 2,650, to the hundred;
    8,500 <= assignments < 9,500, to the thousand)."""
    staff, assignments = q(
        conn, "SELECT (SELECT count(*) FROM staff), (SELECT count(*) FROM assignment)"
    ).one()
    assert rounds_to(staff, 2600, 100), staff
    assert rounds_to(assignments, 9000, 1000), assignments


def test_about_one_post_in_twenty_changed_hands(conn) -> None:
    """README: "about 1 post in 20 changed hands during the year (history kept)".

    A post is held by one person: a grid's head, or an alley chief's group of segments
    (one post, one assignment row per segment). Only those change hands in the demo, so
    the share is counted over them: posts whose earlier holder's assignments ended in the
    past year, out of all such posts held today. (Counted over assignment rows instead it
    is far lower, because a changed chief post is a dozen rows among 9,000 and grid
    members, deputies, workers and dispatched staff never change.)
    """
    changed, posts = q(
        conn,
        """SELECT
             (SELECT count(DISTINCT staff_id) FROM assignment
               WHERE role IN ('grid_head', 'alley_chief') AND valid_to < current_date
                 AND valid_to >= current_date - 365),
             (SELECT count(DISTINCT staff_id) FROM assignment
               WHERE role IN ('grid_head', 'alley_chief') AND valid_to IS NULL)""",
    ).one()
    share = changed / posts
    print(f"{changed} of {posts} grid head and chief posts changed hands: {share:.1%}")
    assert 0.03 <= share <= 0.07
    # history kept: each ended assignment was taken over the next day by a holder who
    # still has it, and nobody holds an ended and a current post at once
    orphans = q(
        conn,
        """SELECT count(*) FROM assignment a WHERE a.valid_to IS NOT NULL AND NOT EXISTS (
             SELECT 1 FROM assignment b WHERE b.role = a.role AND b.valid_to IS NULL
               AND b.valid_from = a.valid_to + 1 AND b.staff_id <> a.staff_id
               AND b.grid_id IS NOT DISTINCT FROM a.grid_id
               AND b.segment_id IS NOT DISTINCT FROM a.segment_id
               AND b.community_id IS NOT DISTINCT FROM a.community_id)""",
    ).scalar()
    assert orphans == 0
    both = q(
        conn,
        """SELECT count(DISTINCT staff_id) FROM assignment WHERE valid_to IS NOT NULL
           AND staff_id IN (SELECT staff_id FROM assignment WHERE valid_to IS NULL)""",
    ).scalar()
    assert both == 0
