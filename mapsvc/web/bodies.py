"""Request bodies read within the upload limit, whether or not they say their length.

A body with a ``Content-Length`` above ``MAX_CONTENT_LENGTH`` is refused before a byte is
read (Werkzeug does that). A chunked body has no length: Werkzeug then reads exactly the
limit and stops without an error, so a view got the first ``MAX_CONTENT_LENGTH`` bytes
as if they were the whole body (broken JSON, a cut CSV: a misleading 400). Here such a
body is read through :class:`BoundedStream`, which reads at most one byte more than the
limit and answers that byte with a 413 naming the limit.
"""

from __future__ import annotations

import io
from functools import cached_property
from typing import IO, Any

from flask import Request
from werkzeug.exceptions import RequestEntityTooLarge


def too_large(limit: int) -> str:
    """The 413's message: the limit, so the user knows how far to split the file."""
    return f"the upload is larger than the limit of {limit / 1024 / 1024:g} MB"


class BoundedStream(io.RawIOBase):
    """``stream`` read up to ``limit`` bytes; reading a byte past it raises a 413.

    Parameters
    ----------
    stream : IO[bytes]
        The server's input stream, which ends where the body ends (chunked bodies).
    limit : int
        The most bytes a body may have.
    """

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__()
        self._stream = stream
        self.limit = limit
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # never ask for more than one byte past the limit
        want = min(len(buffer), self.limit + 1 - self.pos)
        data = self._stream.read(want) if want > 0 else b""
        self.pos += len(data)
        if self.pos > self.limit:
            raise RequestEntityTooLarge(too_large(self.limit))
        buffer[: len(data)] = data
        return len(data)


class BoundedRequest(Request):
    """Flask's request, with bodies of unknown length bounded as well (see module)."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if (
            limit is None
            or self.content_length is not None
            or "wsgi.input_terminated" not in self.environ
            or self.shallow
        ):
            return super().stream
        return io.BufferedReader(BoundedStream(self.environ["wsgi.input"], limit))
