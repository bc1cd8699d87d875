"""Who may do what: the roles' permissions as data, and the scope checks of the writes.

Two questions, answered in two places:

* **May this kind of account use this kind of function at all?** :data:`ROLE_PERMISSIONS`
  maps each role to its permissions; the web checks them for every endpoint through one
  policy table (``mapsvc.web.auth.POLICY``) before the view runs.
* **May this account touch this record?** The ``check_*`` functions below, called by the
  views or services at the point of the write: a chief acts only on incidents routed to
  their own segments, a grid head or member on their own grids' incidents, a planner edits
  only in their district, and patrol tracks and visits are uploaded by their own walker.
  They raise :class:`~mapsvc.core.errors.Forbidden` (403) naming what is refused.

Anonymous requests hold :data:`ANONYMOUS_PERMISSIONS` only; what they read carries no staff
names or phone numbers (:func:`strip_staff`).

What an account *reads* is scoped too (:func:`read_scope`): a leader or dispatcher bound to
a district reads that district's incidents, a chief, grid head or member the incidents of
their own posts and their own patrol tracks; admins and planners read everything. The
incident reads apply it as one more filter (:class:`~mapsvc.services.incidents.IncidentFilter`
``scope``), so the list, the CSV, the figures, the heatmap and the tiles agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import Forbidden, Unauthorized
from mapsvc.core.scope import ReadScope
from mapsvc.models import (
    ACCOUNT_ROLES,
    AlleySegment,
    Assignment,
    Community,
    District,
    Grid,
    Incident,
    Subdistrict,
)
from mapsvc.services.incidents import TRANSITIONS

#: every permission, with what it lets an account do
PERMISSIONS: dict[str, str] = {
    "public": "the public map, its boundary GeoJSON, Open311 reads and reports, the login page",
    "login": "one's own account page and logout",
    "read": "the staff pages and JSON: incidents, patrols, dashboards, coverage, quota",
    "contacts": "staff names and phone numbers in the public map's data",
    "incidents.create": "create incidents",
    "incidents.transition": "move incidents along the closed loop (scoped, see below)",
    "incidents.rate": "record the satisfaction rating of a closed incident",
    "patrol.record": "upload patrol tracks and log visits (one's own unless admin)",
    "assignments.edit": "assign chiefs to segments, CSV assignments (in one's district)",
    "boundaries.edit": "edit boundaries, grids and plans (in one's district)",
    "users.manage": "create, disable and reset accounts and their tokens",
    "audit.read": "read and export the audit trail",
}

_BASE = ("public", "login")
_FIELD = (*_BASE, "read", "contacts", "incidents.create", "incidents.transition", "patrol.record")

#: the permissions of each role (admin: all of them)
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "planner": frozenset((*_BASE, "read", "contacts", "boundaries.edit", "assignments.edit")),
    "leader": frozenset((*_BASE, "read", "contacts")),
    "dispatcher": frozenset(
        (*_BASE, "read", "contacts", "incidents.create", "incidents.transition", "incidents.rate")
    ),
    "chief": frozenset(_FIELD),
    "grid_head": frozenset(_FIELD),
    "grid_member": frozenset(_FIELD),
    "steward": frozenset((*_BASE, "incidents.create", "patrol.record")),
    "public": frozenset(_BASE),
}
assert set(ROLE_PERMISSIONS) == set(ACCOUNT_ROLES)
assert all(p <= set(PERMISSIONS) for p in ROLE_PERMISSIONS.values())

#: what a request without a login may do
ANONYMOUS_PERMISSIONS: frozenset[str] = frozenset({"public"})

#: the people who handle incidents on the ground, and the states they may move one to
#: (taking it in hand, or sending it back to the dispatcher); dispatch, verification and
#: closing are the dispatcher's
HANDLER_ROLES = ("chief", "grid_head", "grid_member")
HANDLER_STATES = frozenset({"in_hand", "returned"})
#: roles that may act for anyone (their district permitting)
OFFICE_ROLES = ("admin", "dispatcher")

#: the staff names (and phone numbers) the map layers put in feature properties
STAFF_PROPERTIES = ("chief_name", "deputy_name", "head_name", "phone", "chief_phone")


@dataclass(frozen=True)
class Principal:
    """The account a request or command acts as, with its role and scope.

    ``district_id`` None is city-wide; ``staff_id`` links the account to the roster.
    :data:`NOBODY` is the anonymous principal.
    """

    user_id: int | None = None
    username: str | None = None
    role: str | None = None
    district_id: int | None = None
    staff_id: int | None = None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def permissions(self) -> frozenset[str]:
        if not self.authenticated or self.role is None:
            return ANONYMOUS_PERMISSIONS
        return ROLE_PERMISSIONS.get(self.role, ANONYMOUS_PERMISSIONS)

    def can(self, permission: str) -> bool:
        """Whether the role holds ``permission`` (an unknown name is a programming error)."""
        if permission not in PERMISSIONS:
            raise KeyError(f"unknown permission {permission!r}")
        return permission in self.permissions

    def require(self, permission: str) -> None:
        """Raise 401 (anonymous) or 403 (an account without it) unless allowed."""
        if self.can(permission):
            return
        if not self.authenticated:
            raise Unauthorized("log in first: this needs an account", permission=permission)
        raise Forbidden(
            f"account {self.username!r} (role {self.role}) may not do this: "
            f"it needs the permission {permission!r}",
            permission=permission,
        )


#: the anonymous principal
NOBODY = Principal()


def strip_staff(collection: dict[str, Any], placeholder: str | None) -> dict[str, Any]:
    """``collection`` (GeoJSON) without staff names and phone numbers, for the public.

    A name that was there becomes ``placeholder`` (say, "assigned"), so the map still tells
    a segment with a chief from one without; an absent one stays None.
    """
    for feature in collection.get("features", []):
        props = feature.get("properties") or {}
        for key in STAFF_PROPERTIES:
            if key in props:
                props[key] = placeholder if props[key] else None
    return collection


# --------------------------------------------------------------------------- scope


def require_roster(principal: Principal) -> None:
    """Refuse a field action of an account not linked to a staff member: it holds no
    post, so nothing is its own."""
    if principal.staff_id is None:
        raise Forbidden(
            f"account {principal.username!r} is not linked to a staff member of the roster",
            scope="staff",
        )


#: the scope of accounts that read everything (admins, planners)
EVERYTHING = ReadScope()
#: roles that read the whole city whatever their district (planners draw across borders)
CITY_READERS = ("admin", "planner")


def field_scope(session: Session, principal: Principal, day: dt.date) -> ReadScope:
    """The own posts of a chief (segments, and incidents naming them) or of a grid head
    or member (grids) on ``day``; none for an account not linked to the roster."""
    staff = principal.staff_id
    if staff is None:
        return ReadScope(district_id=principal.district_id, own=True)
    if principal.role == "chief":
        return ReadScope(
            district_id=principal.district_id,
            own=True,
            staff_id=staff,
            segments=tuple(sorted(own_segments(session, staff, day))),
        )
    return ReadScope(
        district_id=principal.district_id,
        own=True,
        grids=tuple(sorted(own_grids(session, staff, day))),
    )


def read_scope(session: Session, principal: Principal, day: dt.date) -> ReadScope:
    """What ``principal`` reads on ``day`` (see :class:`ReadScope`).

    Anonymous requests reach no scoped read (they lack ``read``; the public map and
    Open311 strip staff instead), so they get :data:`EVERYTHING` here.
    """
    if not principal.authenticated or principal.role in CITY_READERS:
        return EVERYTHING
    if principal.role in HANDLER_ROLES:
        return field_scope(session, principal, day)
    return ReadScope(district_id=principal.district_id)


def check_own_track(principal: Principal, scope: ReadScope, staff_id: int | None) -> int | None:
    """The walker whose tracks a request may read: any (``staff_id`` as asked) unless the
    account is a field one, which reads only its own (asking for another's is a 403)."""
    if not scope.own:
        return staff_id
    if staff_id is not None and staff_id != principal.staff_id:
        raise Forbidden(
            f"account {principal.username!r} reads only its own patrol tracks, "
            f"not those of staff {staff_id}",
            scope="staff",
        )
    require_roster(principal)
    return principal.staff_id


def _posts(session: Session, staff_id: int, column: sa.Column, day: dt.date) -> set[int]:
    """Ids (segments or grids) where ``staff_id`` holds a post on ``day``."""
    rows = session.scalars(
        sa.select(column).where(
            Assignment.staff_id == staff_id,
            column.is_not(None),
            Assignment.valid_from <= day,
            sa.or_(Assignment.valid_to.is_(None), Assignment.valid_to >= day),
        )
    )
    return set(rows)


def own_segments(session: Session, staff_id: int, day: dt.date) -> set[int]:
    """The segments whose chief or deputy ``staff_id`` is on ``day``."""
    return _posts(session, staff_id, Assignment.segment_id, day)


def own_grids(session: Session, staff_id: int, day: dt.date) -> set[int]:
    """The grids where ``staff_id`` is grid head or member on ``day``."""
    return _posts(session, staff_id, Assignment.grid_id, day)


def grid_district(session: Session, grid_id: int) -> int | None:
    """The district of a grid (through its community and subdistrict)."""
    return session.scalar(
        sa.select(Subdistrict.district_id)
        .join(Community, Community.subdistrict_id == Subdistrict.id)
        .join(Grid, Grid.community_id == Community.id)
        .where(Grid.id == grid_id)
    )


def segment_districts(session: Session, segment_ids: Iterable[int]) -> dict[int, set[int]]:
    """The districts each alley segment runs through (segments have no district column),
    in one query; a segment outside every district (or no segment at all) has none."""
    out: dict[int, set[int]] = {i: set() for i in sorted(set(segment_ids))}
    rows = session.execute(
        sa.select(AlleySegment.id, District.id)
        .join(District, sa.func.ST_Intersects(District.geom, AlleySegment.geom))
        .where(AlleySegment.id.in_(list(out)))
    )
    for segment_id, district_id in rows:
        out[segment_id].add(district_id)
    return out


def incident_district(session: Session, incident: Incident) -> int | None:
    """The district an incident was routed into (None when it fell outside every one)."""
    if incident.community_id is None:
        return None
    return session.scalar(
        sa.select(Subdistrict.district_id)
        .join(Community, Community.subdistrict_id == Subdistrict.id)
        .where(Community.id == incident.community_id)
    )


def check_incident_read(
    session: Session, principal: Principal, scope: ReadScope, incident: Incident
) -> None:
    """Refuse reading ``incident`` outside ``scope`` (a 403 naming it, like the writes)."""
    if scope.district_id is not None and incident_district(session, incident) != scope.district_id:
        raise Forbidden(
            f"incident {incident.id} is outside the district of account {principal.username!r}",
            scope="district",
        )
    if scope.own and not scope.owns_incident(incident):
        raise Forbidden(
            f"incident {incident.id} is not routed to a segment or grid of account "
            f"{principal.username!r}",
            scope="incident",
        )


def check_district(principal: Principal, districts: Iterable[int | None], what: str) -> None:
    """Refuse a write in a district outside ``principal``'s (city-wide accounts pass).

    ``districts`` are those the record lies in; a district-bound account may write only
    when every one of them is its own (a segment on the border belongs to both sides).
    """
    if principal.district_id is None:
        return
    outside = {d for d in districts if d != principal.district_id}
    if outside or not set(districts):
        raise Forbidden(
            f"{what} is outside the district of account {principal.username!r}",
            scope="district",
        )


def check_transition(
    session: Session, principal: Principal, incident: Incident, to_state: str, today: dt.date
) -> None:
    """May ``principal`` move ``incident`` to ``to_state``? Posts count as of ``today``
    (the district's date, ``settings.today()``).

    Admins and dispatchers act on any incident of their district. Chiefs act on incidents
    routed to a segment they hold (or naming them as chief), grid heads and members on
    incidents in their grids, and all three only take an incident in hand or send it back.
    """
    principal.require("incidents.transition")
    label = f"incident {incident.id}"
    if principal.role in OFFICE_ROLES:
        check_district(principal, [incident_district(session, incident)], label)
        return
    if principal.role not in HANDLER_ROLES:
        raise Forbidden(f"account {principal.username!r} may not move incidents", scope="role")
    if to_state not in HANDLER_STATES:
        allowed = ", ".join(s for s in TRANSITIONS if s in HANDLER_STATES)
        raise Forbidden(
            f"a {principal.role} may move an incident only to {allowed}; "
            f"{to_state} is the dispatcher's",
            scope="state",
        )
    require_roster(principal)
    if not field_scope(session, principal, today).owns_incident(incident):
        raise Forbidden(
            f"{label} is not routed to a segment or grid of account {principal.username!r}",
            scope="incident",
        )


def check_own_staff(principal: Principal, staff_id: int, what: str) -> None:
    """Tracks and visits are recorded by their own walker; admins may record anyone's."""
    principal.require("patrol.record")
    if principal.role == "admin":
        return
    if principal.staff_id is None or principal.staff_id != staff_id:
        raise Forbidden(
            f"{what} of staff {staff_id} may be recorded only by that person's own account "
            f"(account {principal.username!r} is "
            + (f"staff {principal.staff_id})" if principal.staff_id else "not on the roster)"),
            scope="staff",
        )


def check_segment_edit(session: Session, principal: Principal, segment_id: int) -> None:
    """Assigning a segment's chief: the segment must lie in the planner's district."""
    check_segments_edit(session, principal, [segment_id])


def check_segments_edit(session: Session, principal: Principal, segment_ids: list[int]) -> None:
    """Assigning the chiefs of many segments (a district's CSV): each must lie wholly in
    the planner's district; the first, by id, that does not is refused."""
    principal.require("assignments.edit")
    if principal.district_id is None:
        return
    for segment_id, districts in segment_districts(session, segment_ids).items():
        check_district(principal, districts, f"segment {segment_id}")


def check_grid_edit(session: Session, principal: Principal, grid_id: int) -> None:
    """Editing a grid (its outline or posts): the grid must lie in the planner's district."""
    principal.require("boundaries.edit")
    check_district(principal, [grid_district(session, grid_id)], f"grid {grid_id}")


def check_plan_edit(session: Session, principal: Principal, plan_id: int) -> None:
    """Editing or publishing a plan: every community it redraws must lie in the planner's
    district."""
    from mapsvc.models import PlanCommunity

    principal.require("boundaries.edit")
    districts = session.scalars(
        sa.select(Subdistrict.district_id)
        .join(Community, Community.subdistrict_id == Subdistrict.id)
        .join(PlanCommunity, PlanCommunity.community_id == Community.id)
        .where(PlanCommunity.plan_id == plan_id)
    ).all()
    check_district(principal, districts, f"plan {plan_id}")


def check_communities_edit(session: Session, principal: Principal, codes: list[str]) -> None:
    """Drafting a plan for communities: they must lie in the planner's district."""
    principal.require("boundaries.edit")
    districts = session.scalars(
        sa.select(Subdistrict.district_id)
        .join(Community, Community.subdistrict_id == Subdistrict.id)
        .where(Community.code.in_(codes))
    ).all()
    if districts:
        check_district(principal, districts, f"communities {', '.join(codes)}")


__all__ = [
    "ANONYMOUS_PERMISSIONS",
    "NOBODY",
    "PERMISSIONS",
    "ROLE_PERMISSIONS",
    "EVERYTHING",
    "Principal",
    "ReadScope",
    "check_own_track",
    "field_scope",
    "read_scope",
    "check_district",
    "check_incident_read",
    "check_grid_edit",
    "check_communities_edit",
    "check_own_staff",
    "check_plan_edit",
    "check_segment_edit",
    "check_segments_edit",
    "check_transition",
    "strip_staff",
]
