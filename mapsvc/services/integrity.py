"""The database's own rules, answered as the service's errors.

Why here: a check in Python (``SELECT`` first, then ``INSERT``) leaves a window in which a
concurrent request does the same, and the database's constraint then fails the loser with
an ``IntegrityError`` -- a 500 unless someone translates it. The constraints are the last
word; this module turns a named one into the :class:`~mapsvc.core.errors.ServiceError`
the caller chose (usually a 409 :class:`~mapsvc.core.errors.Conflict`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mapsvc.core.errors import ServiceError


def constraint_name(exc: sa.exc.DBAPIError) -> str | None:
    """Name of the constraint PostgreSQL reports ``exc`` broke (None when it names none)."""
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def translate(exc: sa.exc.IntegrityError, errors: Mapping[str, ServiceError]) -> ServiceError:
    """The error chosen for the constraint ``exc`` broke; ``exc`` itself is re-raised when
    the constraint is not one of ``errors`` (an unexpected violation stays loud)."""
    err = errors.get(constraint_name(exc) or "")
    if err is None:
        raise exc
    return err


@contextmanager
def constraint_errors(session: Session, errors: Mapping[str, ServiceError]) -> Iterator[None]:
    """Run the block in a savepoint; a violation of a constraint named in ``errors``
    rolls the savepoint back and raises that constraint's error instead.

    The savepoint keeps the caller's transaction usable, so the caller decides whether
    the whole request fails (it does, in every view: the error is its answer).

    Parameters
    ----------
    session : Session
        The session whose transaction the block writes in.
    errors : Mapping[str, ServiceError]
        Constraint name -> the error to raise when the block breaks it.
    """
    try:
        with session.begin_nested():
            yield
    except sa.exc.IntegrityError as exc:
        raise translate(exc, errors) from None
