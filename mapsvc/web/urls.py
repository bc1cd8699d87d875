"""Absolute URLs, built from the configured public address, never from the request.

A request's Host header is whatever the client wrote: a link built from it (Open311
discovery tells clients where to send reports) could point them at any site. The root is
``Settings.base_url`` (``PUBLIC_URL``, else ``http://HOST:PORT``).
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request, url_for

from mapsvc.web.context import get_settings


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of ``endpoint`` under the configured public address.

    The path is the app's own (a proxy's path prefix, when it passes one as
    ``SCRIPT_NAME``, is dropped: ``PUBLIC_URL`` includes it).
    """
    path = url_for(endpoint, **values)
    root = request.script_root if has_request_context() else ""
    if root and path.startswith(root):
        path = path[len(root) :]
    return get_settings().base_url + path
