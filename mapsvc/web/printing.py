"""``/print``: a map page's print layout as PDF or PNG, made on the server in Chromium.

The view loads the page (``page=/incidents/map?...``, a path on this server) with
``print=1`` in headless Chromium (:mod:`mapsvc.chromium`, Debian's), at the paper's size,
and returns ``page.pdf()`` (one page) or a screenshot. The request's cookies and
``Authorization`` go along, so the printout shows what the user may see; every request
to another origin is blocked, as on screen.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, request

from mapsvc.core.errors import ServiceError, ValidationError
from mapsvc.web.context import get_settings
from mapsvc.web.render import attachment

bp = Blueprint("printing", __name__)

#: paper sizes in millimetres (portrait: width, height)
PAPER_MM = {"A4": (210, 297), "A3": (297, 420)}
ORIENTATIONS = ("landscape", "portrait")
FORMATS = {"pdf": "application/pdf", "png": "image/png"}


class PrintFailed(ServiceError):
    """The server's own browser could not load the page to print."""

    status = 502


#: CSS pixels per millimetre (96 per inch)
PX_PER_MM = 96 / 25.4
#: how long a page may take to draw (ms)
TIMEOUT_MS = 30_000


def _choice(name: str, default: str, allowed: tuple[str, ...] | dict) -> str:
    value = request.args.get(name, default)
    if value not in allowed:
        raise ValidationError(f"{name} {value!r} is not one of {', '.join(allowed)}", field=name)
    return value


def _page_path() -> str:
    page = request.args.get("page", "/")
    parts = urlsplit(page)
    if not page.startswith("/") or page.startswith("//") or parts.scheme or parts.netloc:
        raise ValidationError(f"page {page[:80]!r} must be a path on this server", field="page")
    if parts.path.startswith("/print"):
        raise ValidationError("page must be a map page, not /print itself", field="page")
    return page


@bp.get("/print")
def print_view() -> Response:
    """The page ``page`` printed: ``paper`` A4|A3, ``orientation``, ``format`` pdf|png."""
    from playwright.sync_api import Error as BrowserError
    from playwright.sync_api import sync_playwright

    from mapsvc.chromium import launch

    page_path = _page_path()
    paper = _choice("paper", "A4", tuple(PAPER_MM))
    orientation = _choice("orientation", "landscape", ORIENTATIONS)
    fmt = _choice("format", "pdf", FORMATS)
    width_mm, height_mm = PAPER_MM[paper]
    if orientation == "landscape":
        width_mm, height_mm = height_mm, width_mm
    viewport = {"width": round(width_mm * PX_PER_MM), "height": round(height_mm * PX_PER_MM)}
    # the service's own configured address, never the Host header: the page is fetched
    # with the caller's credentials, which must not go to a host a client names
    origin = get_settings().base_url.rstrip("/")
    url = f"{origin}{page_path}{'&' if '?' in page_path else '?'}print=1"
    headers = {k: request.headers[k] for k in ("Cookie", "Authorization") if k in request.headers}
    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(
                viewport=viewport,
                device_scale_factor=2 if fmt == "png" else 1,
                extra_http_headers=headers,
            )
            tab = context.new_page()
            tab.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(origin) else route.abort()
                ),
            )
            try:
                tab.goto(url, wait_until="networkidle", timeout=TIMEOUT_MS)
            except BrowserError as exc:
                first = str(exc).splitlines()[0]
                raise PrintFailed(
                    f"the page {page_path} could not be loaded from {origin} "
                    f"(PUBLIC_URL must be an address this server reaches): {first}",
                    field="page",
                ) from None
            tab.wait_for_selector(".leaflet-container", state="attached", timeout=TIMEOUT_MS)
            if fmt == "pdf":
                body = tab.pdf(
                    width=f"{width_mm}mm",
                    height=f"{height_mm}mm",
                    print_background=True,
                    margin={"top": "0", "right": "0", "bottom": "0", "left": "0"},
                )
            else:
                body = tab.screenshot(full_page=False)
        finally:
            browser.close()
    name = f"map-{paper}-{orientation}.{fmt}"
    return attachment(body, name, FORMATS[fmt])
