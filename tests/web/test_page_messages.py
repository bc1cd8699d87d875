"""Every message id the pages show has a Chinese text: views, layers and Jinja templates.

``tests/layers/test_i18n.py`` checks what the layers translate without Flask. The pages
also say things of their own: the views' ``gettext`` calls, the nav bar's ``N_`` table
and the templates' ``_("...")`` (the filter form, the panels, the legend and summary
partials). These are found the way ``pybabel extract -F babel.cfg`` finds them, with
Babel's Python and Jinja extractors over the folders ``babel.cfg`` names, so a message
moved from Python into a template is still extracted and still translated.
"""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from mapsvc.core.i18n import TRANSLATIONS

ROOT = Path(__file__).resolve().parents[2]


def _extracted() -> dict[tuple[str | None, str], list[str]]:
    """(context, message id) -> where it is, for every message ``babel.cfg`` extracts."""
    with (ROOT / "babel.cfg").open() as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[tuple[str | None, str], list[str]] = {}
    for filename, line, msgid, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        assert isinstance(msgid, str) and msgid, f"{filename}:{line}: not a plain message id"
        found.setdefault((context, msgid), []).append(f"{filename}:{line}")
    return found


def test_babel_cfg_finds_the_views_and_the_templates() -> None:
    files = {w.rsplit(":", 1)[0] for where in _extracted().values() for w in where}
    # the templates (moved out of Python f-strings) and the views are extracted
    for name in (
        "mapsvc/templates/_nav.html",
        "mapsvc/templates/incidents/_filters.html",
        "mapsvc/templates/incidents/list.html",
        "mapsvc/templates/layers/_summary.html",
        "mapsvc/templates/patrol/panel.html",
        "mapsvc/templates/staffing/coverage.html",
        "mapsvc/templates/dashboard.html",
        "mapsvc/web/incidents.py",
        "mapsvc/web/render.py",
        "layers/heatmap.py",
    ):
        assert name in files, name
    # the nav's link labels are marked where they are defined (N_), not only translated
    messages = {msgid for _ctx, msgid in _extracted()}
    assert {"Map", "Incidents", "Incident list", "Patrol", "Dashboard"} <= messages
    assert {"Apply", "Draw as", "Overdue only", "{n} segments without a chief"} <= messages


def test_every_page_message_has_a_chinese_translation() -> None:
    with (TRANSLATIONS / "zh_Hans_CN/LC_MESSAGES/messages.po").open("rb") as fh:
        po = read_po(fh)
    missing = [
        (context, msgid, where[0])
        for (context, msgid), where in sorted(_extracted().items(), key=lambda kv: kv[0][1])
        if not ((entry := po.get(msgid, context=context)) and entry.string)
    ]
    assert missing == [], f"no zh_CN text in messages.po for {missing}"
