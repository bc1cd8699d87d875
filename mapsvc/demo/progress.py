"""The progress callback the demo reports to, and its default that shows nothing.

The generator never draws a progress bar itself: the CLI passes its own factory
(``mapsvc.commands.progress``, tqdm on stderr), tests and benchmarks pass nothing. The shape
is the one :func:`mapsvc.services.streets.import_osm` takes too: a factory called like
tqdm, ``progress(iterable=None, total=None, desc="", unit="it")``, whose result can be
iterated (wrapping ``iterable``), advanced with ``.update(n)``, closed with ``.close()`` and
used as a context manager.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol


class Progress(Protocol):
    """What the demo uses of a progress bar (a subset of ``tqdm.tqdm``)."""

    def __iter__(self) -> Iterator[Any]: ...

    def update(self, n: float = 1) -> object: ...

    def close(self) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> object: ...


class ProgressFactory(Protocol):
    """Makes a :class:`Progress` for one piece of long work."""

    def __call__(
        self,
        iterable: Iterable[Any] | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
    ) -> Progress: ...


def no_progress(
    iterable: Iterable[Any] | None = None,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
) -> Progress:
    """A progress bar that shows nothing: tqdm's own disabled bar.

    Iterating it yields ``iterable`` unchanged; ``update`` and ``close`` do nothing.
    """
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=True)
