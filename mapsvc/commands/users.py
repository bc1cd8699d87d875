"""``mapsvc users create|list|disable|enable|passwd|token|tokens|revoke``: accounts from the
command line.

Passwords are read from a hidden prompt (asked twice) or, for scripts, from standard input
with ``--password-stdin``; never from the command line, where other users of the machine
could read them. A new API token is printed once and cannot be shown again (only its
SHA-256 is kept).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from mapsvc.commands.common import open_engine
from mapsvc.core.errors import ServiceError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise click.UsageError("--password-stdin: no password on standard input")
        return value
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _run(work: Callable[[Session], T]) -> T:
    """Run ``work(session)`` in one transaction; a service error is one line, not a trace."""
    from mapsvc.db import session_scope

    engine = open_engine()
    try:
        with session_scope(engine) as s:
            return work(s)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()


@click.group("users")
def users_group() -> None:
    """Accounts (logins with a role and scope) and their API tokens."""


@users_group.command("create")
@click.argument("username")
@click.option(
    "--role",
    required=True,
    help="admin, planner, leader, dispatcher, chief, grid_head, grid_member, steward, public",
)
@click.option("--district", default=None, help="District code the role is limited to.")
@click.option("--staff", default=None, help="Roster staff code (or id) this account is.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="A machine account: API tokens only, no login.")
def create_command(
    username: str,
    role: str,
    district: str | None,
    staff: str | None,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Create an account."""
    from mapsvc.services import accounts

    password = None if no_password else _password(password_stdin)
    user = _run(
        lambda s: (
            accounts.create_user(
                s, username, password, role, district=district, staff=staff
            ).username
        )
    )
    click.echo(f"created account {user} ({role})")


@users_group.command("list")
def list_command() -> None:
    """List the accounts."""
    from mapsvc.services import accounts

    rows = _run(accounts.list_users)
    for r in rows:
        state = "disabled" if not r["active"] else ("locked" if r["locked"] else "active")
        scope = r["district"] or "city-wide"
        staff = f", staff {r['staff_name']} ({r['staff_id']})" if r["staff_id"] else ""
        click.echo(f"{r['username']}\t{r['role']}\t{scope}\t{state}{staff}")
    if not rows:
        click.echo("no accounts yet: mapsvc users create USERNAME --role admin")


@users_group.command("disable")
@click.argument("username")
def disable_command(username: str) -> None:
    """Disable an account: no login, no tokens, its sessions end."""
    from mapsvc.services import accounts

    _run(lambda s: accounts.set_active(s, username, False))
    click.echo(f"disabled account {username}")


@users_group.command("enable")
@click.argument("username")
def enable_command(username: str) -> None:
    """Enable a disabled account again."""
    from mapsvc.services import accounts

    _run(lambda s: accounts.set_active(s, username, True))
    click.echo(f"enabled account {username}")


@users_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def passwd_command(username: str, password_stdin: bool) -> None:
    """Set (reset) an account's password; this also lifts a lockout."""
    from mapsvc.services import accounts

    password = _password(password_stdin)
    _run(lambda s: accounts.set_password(s, username, password))
    click.echo(f"password of {username} changed")


@users_group.command("token")
@click.argument("username")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
def token_command(username: str, name: str) -> None:
    """Make a new API token for USERNAME and print it (once)."""
    from mapsvc.services import accounts

    token = _run(lambda s: accounts.create_token(s, username, name)[0])
    click.echo(token)
    click.echo(
        "Send it as 'Authorization: Bearer TOKEN' (or as Open311's api_key). "
        "It is not shown again.",
        err=True,
    )


@users_group.command("tokens")
@click.argument("username")
def tokens_command(username: str) -> None:
    """List USERNAME's tokens (id, name, prefix, created, last used, revoked)."""
    from mapsvc.services import accounts

    for t in _run(lambda s: accounts.list_tokens(s, username)):
        click.echo(
            f"{t['id']}\t{t['name']}\t{t['prefix']}…\tcreated {t['created_at']}\t"
            f"used {t['last_used_at'] or 'never'}\t"
            + (f"revoked {t['revoked_at']}" if t["revoked_at"] else "active")
        )


@users_group.command("revoke")
@click.argument("username")
@click.argument("token_id", type=int)
def revoke_command(username: str, token_id: int) -> None:
    """Revoke token TOKEN_ID of USERNAME; it stops working at once."""
    from mapsvc.services import accounts

    _run(lambda s: accounts.revoke_token(s, username, token_id))
    click.echo(f"revoked token {token_id} of {username}")


COMMANDS = [users_group]
