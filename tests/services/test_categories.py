"""Default incident categories: seeded once, edits survive a re-run."""

from __future__ import annotations

import sqlalchemy as sa

from mapsvc.db import session_scope
from mapsvc.services.categories import DEFAULT_CATEGORIES, ensure_categories


def test_ensure_categories_is_idempotent_and_keeps_edits(fresh_engine) -> None:
    with session_scope(fresh_engine) as s:
        added = ensure_categories(s)
    assert added == len(DEFAULT_CATEGORIES) >= 15
    with fresh_engine.begin() as c:
        c.execute(
            sa.text("UPDATE incident_category SET name_zh = '占道' WHERE code = 'street_vending'")
        )
        c.execute(sa.text("DELETE FROM incident_category WHERE code = 'noise'"))
    with session_scope(fresh_engine) as s:
        assert ensure_categories(s) == 1  # only the missing one comes back
    with fresh_engine.connect() as c:
        rows = dict(c.execute(sa.text("SELECT code, name_zh FROM incident_category")).all())
        sev = set(
            c.execute(sa.text("SELECT DISTINCT default_severity FROM incident_category")).scalars()
        )
    assert rows["street_vending"] == "占道" and rows["noise"] == "噪音扰民"
    assert set(rows) == {c.code for c in DEFAULT_CATEGORIES}
    assert sev <= {"minor", "ordinary", "major", "grave"} and "minor" in sev
    # codes are Open311 service codes: lower-case ASCII identifiers, names in both languages
    for cat in DEFAULT_CATEGORIES:
        assert cat.code.isascii() and cat.code == cat.code.lower() and " " not in cat.code
        assert cat.name_zh and cat.name_en and cat.group
