"""A progress factory for tests: it records every bar a service opens (no terminal)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


class RecordedBar:
    """One bar: its total, its count, the descriptions it had in turn, whether closed."""

    def __init__(self, iterable: Iterable[Any] | None, total: float | None, desc: str) -> None:
        self.iterable, self.total, self.n = iterable, total, 0
        self.names, self.closed = [desc], False

    def __iter__(self) -> Iterator[Any]:
        for x in self.iterable or ():
            self.n += 1
            yield x

    def update(self, n: float = 1) -> None:
        self.n += n

    def set_description(self, desc: str | None = None) -> None:
        self.names.append(desc or "")

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> RecordedBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingProgress:
    """A :data:`mapsvc.core.progress.Progress` factory keeping the bars it made.

    ``steps`` is [description, total, count] per bar (like tqdm, a new description renames
    the bar); ``names`` the descriptions each bar had in turn.
    """

    def __init__(self) -> None:
        self.bars: list[RecordedBar] = []

    def __call__(
        self,
        iterable: Iterable[Any] | None = None,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
    ) -> RecordedBar:
        bar = RecordedBar(iterable, total, desc)
        self.bars.append(bar)
        return bar

    @property
    def steps(self) -> list[list[Any]]:
        return [[b.names[-1], b.total, b.n] for b in self.bars]

    @property
    def names(self) -> list[list[str]]:
        return [b.names for b in self.bars]

    @property
    def all_closed(self) -> bool:
        return all(b.closed for b in self.bars)
