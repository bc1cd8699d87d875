"""Results kept while the database is unchanged: the one cache of computed answers.

Some answers are slow to compute and asked for again and again with the same arguments:
the dashboard's figures, the heatmap of a district view over a million incidents. Each is
kept with the database's write state (:func:`write_state`) it was computed in and used
again only while that state is unchanged, so any committed write - from a web worker, the
CLI, an import, ``psql`` - makes the next request compute afresh: the answer stays exact.
Answers that also move with the clock alone (the dashboard's "overdue", "today") are kept
for a time to live on top.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from cachetools import LRUCache
from sqlalchemy.orm import Session


def write_state(session: Session) -> str | None:
    """What changes whenever any transaction writes in the database; None inside a
    transaction that has written itself (what it computes must not be kept).

    PostgreSQL's current snapshot (``xmin:xmax:in-progress xids``) moves when a
    transaction that writes starts or ends, in any process: web workers, the CLI, imports.
    Read-only transactions get no transaction id and leave it alone.
    """
    snapshot, own_writes = session.execute(
        sa.text("SELECT pg_current_snapshot()::text, pg_current_xact_id_if_assigned()")
    ).one()
    return None if own_writes is not None else str(snapshot)


def database_key(session: Session) -> str:
    """Which database ``session`` reads (its URL without the password): part of every key,
    so one process serving several databases (tests, benchmarks) never mixes them up."""
    return session.get_bind().url.render_as_string(hide_password=True)


@dataclass
class _Kept:
    state: str
    made: float
    value: Any


class ResultCache:
    """Results kept by their arguments, each with the write state it was computed in.

    A kept result is used when the state is unchanged and it is younger than the time to
    live. When it is older (same state: the data is the same, only the clock moved), one
    request recomputes it while the others keep getting the old one, so a busy screen
    never waits. When nothing usable is kept, the first request computes and concurrent
    ones for the same arguments wait for it rather than all computing at once.

    Parameters
    ----------
    size : int
        How many results are kept (least recently used go first).
    """

    def __init__(self, size: int) -> None:
        self._kept: LRUCache = LRUCache(maxsize=size)
        self._computing: set[Hashable] = set()
        self._changed = threading.Condition()

    def get(self, key: Hashable, state: str, ttl: float, compute: Callable[[], Any]) -> Any:
        """The result for ``key`` in ``state``, from ``compute()`` when none is kept.

        ``ttl``: seconds a result is used while the state is unchanged (``math.inf`` for a
        result that depends on the data alone). The kept object itself is returned: a
        caller that changes it must copy it first.
        """
        with self._changed:
            while True:
                kept = self._kept.get(key)
                same_data = kept is not None and kept.state == state
                if same_data and time.monotonic() - kept.made < ttl:
                    return kept.value
                if key not in self._computing:
                    self._computing.add(key)
                    break  # this request computes
                if same_data:
                    return kept.value  # another request is refreshing it
                self._changed.wait()
        try:
            value = compute()
            with self._changed:
                self._kept[key] = _Kept(state, time.monotonic(), value)
            return value
        finally:
            with self._changed:
                self._computing.discard(key)
                self._changed.notify_all()

    def clear(self) -> None:
        """Forget every kept result."""
        with self._changed:
            self._kept.clear()
