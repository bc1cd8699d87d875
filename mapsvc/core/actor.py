"""Who is acting: the account (or the CLI, or nobody) a write is recorded against."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """The author of a request or a command, as the audit trail records it.

    ``via`` says how they were known: ``session`` (login cookie), ``token`` (API token),
    ``cli`` (a ``mapsvc`` command; ``username`` is the OS user) or ``anonymous``.
    """

    user_id: int | None = None
    username: str | None = None
    address: str | None = None
    via: str = "anonymous"


#: nobody in particular (an anonymous request, a test without a login)
ANONYMOUS = Actor()
