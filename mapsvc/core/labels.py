"""What the incident codes are called: severity classes and closed-loop states.

The database, the API and Open311 speak in codes (``minor``, ``in_hand``); people read
labels. Each code's label is defined here once, as an English message id marked with
``N_`` so that ``pybabel extract`` finds it; its Chinese text lives in the gettext
catalogue (``mapsvc/translations/zh_Hans_CN/LC_MESSAGES/messages.po``) and nowhere else.
The heatmap legend and filters, the incident list and its CSV, and Open311's service
definitions all translate these ids, so a class reads the same everywhere (小微 minor,
一般 ordinary, 较大 major, 重大 grave; 受理 received ... 结案 closed).

Only the vocabulary lives here, no translation machinery: callers translate with the
catalogue of their language (``translator(locale)``), so this module needs neither Flask
nor a request.
"""

from __future__ import annotations

from collections.abc import Callable

from mapsvc.core.i18n import N_

#: severity class code -> message id (the classes of ``mapsvc.models.SEVERITIES``)
SEVERITY_LABELS: dict[str, str] = {
    "minor": N_("Minor"),
    "ordinary": N_("Ordinary"),
    "major": N_("Major"),
    "grave": N_("Grave"),
}

#: closed-loop state code -> message id (the states of ``mapsvc.models.STATES``)
STATE_LABELS: dict[str, str] = {
    "received": N_("Received"),
    "dispatched": N_("Dispatched"),
    "in_hand": N_("In hand"),
    "verified": N_("Verified"),
    "closed": N_("Closed"),
    "returned": N_("Returned"),
    "reopened": N_("Reopened"),
}

#: account role code -> message id (the roles of ``mapsvc.models.ACCOUNT_ROLES``); kept
#: apart from :data:`CODE_LABELS`, which are the incident vocabulary
ROLE_LABELS: dict[str, str] = {
    "admin": N_("Administrator"),
    "planner": N_("Planner"),
    "leader": N_("Leader"),
    "dispatcher": N_("Dispatcher"),
    "chief": N_("Street and alley chief"),
    "grid_head": N_("Grid head"),
    "grid_member": N_("Grid member"),
    "steward": N_("Alley steward"),
    "public": N_("Public"),
}

#: plan status -> message id (``mapsvc.models.PLAN_STATUSES``)
PLAN_STATUS_LABELS: dict[str, str] = {
    "draft": N_("Draft"),
    "published": N_("Published"),
    "discarded": N_("Discarded"),
}

#: every labelled code (severity and state codes never coincide)
CODE_LABELS: dict[str, str] = {**SEVERITY_LABELS, **STATE_LABELS}


def code_label(code: str, gettext: Callable[[str], str]) -> str:
    """The label of a severity or state ``code`` as ``gettext`` translates it.

    Parameters
    ----------
    code : str
        A severity class or state code, as stored (``in_hand``).
    gettext : callable
        The translation of the caller's language, e.g. ``translator("zh_CN")``; a code
        reads "In hand" in English and 处置中 in Chinese.

    Returns
    -------
    str
        The translated label, or ``code`` itself when it has none (a value from another
        system shown as written rather than hidden).
    """
    msgid = CODE_LABELS.get(code)
    return gettext(msgid) if msgid is not None else code
