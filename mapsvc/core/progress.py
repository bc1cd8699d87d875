"""Progress of long work: the one protocol between services and whoever shows it.

A service that loops over many things (street pieces, rows to copy, addresses to look up)
takes a ``progress`` factory and opens a bar with it per stage; the CLI passes a tqdm
factory (``mapsvc.commands.common.progress``), tests pass a recording one, and everything else
gets :func:`no_progress`, which shows nothing. The service never knows how (or whether)
progress is drawn, and needs no terminal library.

The factory is called as tqdm is: ``progress(iterable=None, total=None, desc="",
unit="it")``; what it returns is used as tqdm's bars are: iterated (when made from an
iterable), advanced with ``update(n)``, renamed with ``set_description(desc)`` when a
stage has several steps, and closed, usually as a context manager.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from typing import Any, Protocol, TypeVar, runtime_checkable


@runtime_checkable
class ProgressBar(Protocol):
    """What a service may do with a bar: a subset of ``tqdm.tqdm``'s interface."""

    def __iter__(self) -> Iterator[Any]: ...

    def update(self, n: float = 1) -> object: ...

    def set_description(self, desc: str | None = None) -> object: ...

    def close(self) -> object: ...

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, *exc: object) -> object: ...


#: a factory of bars, called as ``progress(iterable=None, total=None, desc="", unit="it")``
Progress = Callable[..., ProgressBar]


class _NoBar:
    """A bar that shows nothing; iterating it iterates what it was made from."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Iterable[Any] | None) -> None:
        self._iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable if self._iterable is not None else ())

    def update(self, n: float = 1) -> None:
        pass

    def set_description(self, desc: str | None = None) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def no_progress(
    iterable: Iterable[Any] | None = None,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
) -> ProgressBar:
    """The default factory of every service: bars that show nothing and cost nothing.

    A disabled tqdm would behave the same, but would make tqdm, a terminal library only
    the CLI uses, a requirement of every service call (web requests, tests, benchmarks).
    """
    return _NoBar(iterable)


F = TypeVar("F", bound=Callable[..., Any])


def closes_bars(fn: F) -> F:
    """Decorator: every bar ``fn`` opens from its keyword ``progress`` factory is closed
    when ``fn`` returns or raises.

    A long function whose later stages share one bar (an import's copy, route and insert,
    renamed with ``set_description``) can then open it where the stage starts instead of
    wrapping the rest of its body in a ``with`` block, and a refusal or a database error
    still closes the bar before the caller prints its message.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        factory: Progress = kwargs.get("progress") or no_progress
        with ExitStack() as opened:

            def tracked(*a: Any, **k: Any) -> ProgressBar:
                return opened.enter_context(factory(*a, **k))

            kwargs["progress"] = tracked
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
