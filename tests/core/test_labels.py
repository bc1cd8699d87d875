"""The incident vocabulary's labels: one message id per code, each with its Chinese."""

from __future__ import annotations

import re

from mapsvc.core import labels
from mapsvc.core.i18n import translator
from mapsvc.models import ACCOUNT_ROLES, SEVERITIES, STATES

CJK = re.compile(r"[\u3400-\u9fff]")


def test_every_stored_code_has_a_label() -> None:
    assert tuple(labels.SEVERITY_LABELS) == SEVERITIES
    assert tuple(labels.STATE_LABELS) == STATES
    assert tuple(labels.ROLE_LABELS) == ACCOUNT_ROLES
    assert labels.CODE_LABELS == {**labels.SEVERITY_LABELS, **labels.STATE_LABELS}
    assert len(labels.CODE_LABELS) == len(SEVERITIES) + len(STATES)  # no code in both


def test_labels_read_as_the_catalogue_says() -> None:
    zh, en = translator("zh_CN"), translator("en")
    expected_zh = {"minor": "小微", "ordinary": "一般", "major": "较大", "grave": "重大"}
    assert {c: labels.code_label(c, zh) for c in SEVERITIES} == expected_zh
    assert labels.code_label("received", zh) == "受理"
    assert labels.code_label("closed", zh) == "结案"
    assert labels.code_label("in_hand", en) == "In hand"
    for code in labels.CODE_LABELS:
        assert CJK.search(labels.code_label(code, zh)), code
        assert not CJK.search(labels.code_label(code, en)), code


def test_a_code_without_a_label_is_shown_as_written() -> None:
    zh = translator("zh_CN")
    assert labels.code_label("pending_external", zh) == "pending_external"
    # a code that happens to look like another message id is not translated through it
    assert labels.code_label("grid", zh) == "grid"


def test_the_vocabulary_needs_no_web_framework() -> None:
    """mapsvc/core/labels.py imports neither Flask nor folium itself."""
    source = open(labels.__file__, encoding="utf-8").read()
    imported = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, flags=re.M)
    assert not {m.split(".")[0] for m in imported} & {"flask", "folium", "branca"}
