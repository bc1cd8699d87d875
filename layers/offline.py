"""Make folium figures load every asset from the service itself, never from a CDN.

folium elements list their scripts and stylesheets in ``default_js`` / ``default_css`` as
``(name, url)`` pairs pointing at CDNs. :func:`localize` walks a figure before rendering and
replaces each pair by the copy listed in ``static/vendor.json`` (installed from npm at
set-up time), drops the ones our pages do not use, and refuses anything unknown, so a new
plugin cannot silently bring a CDN back.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import folium
    from branca.element import Element

VENDOR_JSON = Path(__file__).resolve().parent.parent / "static" / "vendor.json"
VENDOR_URL = "/static/vendor/"
#: a <script src> or <link href> pointing off this service
_EXTERNAL_ASSET = re.compile(
    r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//[^\"' >]+", re.I
)


@lru_cache(maxsize=1)
def vendor_map() -> dict[str, str | None]:
    """folium resource name -> local URL (None: not needed, dropped)."""
    spec = json.loads(VENDOR_JSON.read_text())
    return {
        name: (VENDOR_URL + entry[1] if entry else None)
        for name, entry in spec.items()
        if not name.startswith("_")
    }


def vendor_url(name: str) -> str:
    """The local URL of a vendored asset, e.g. ``vendor_url("chartjs")``."""
    url = vendor_map().get(name)
    if url is None:
        raise KeyError(f"asset {name!r} is not vendored; add it to static/vendor.json")
    return url


def _localize_pairs(pairs: list[tuple[str, str]], owner: str) -> list[tuple[str, str]]:
    mapping = vendor_map()
    out = []
    for name, url in pairs:
        if not url.startswith(("http://", "https://", "//")):
            out.append((name, url))
            continue
        if name not in mapping:
            raise ValueError(
                f"{owner} wants {name!r} from {url}; add it to static/vendor.json "
                "(npm package) or drop it there"
            )
        if mapping[name] is not None:
            out.append((name, mapping[name]))
    return out


def localize(element: Element) -> None:
    """Rewrite ``element`` and all its children to use local assets (in place)."""
    stack = [element]
    seen: set[int] = set()
    while stack:
        el = stack.pop()
        if id(el) in seen:
            continue
        seen.add(id(el))
        for attr in ("default_js", "default_css"):
            pairs = getattr(el, attr, None)
            if pairs:
                setattr(el, attr, _localize_pairs(list(pairs), type(el).__name__))
        stack.extend(getattr(el, "_children", {}).values())


def render_page(m: folium.Map) -> str:
    """Render a folium map to a full HTML page with local assets only."""
    localize(m)
    html = m.get_root().render()
    external = _EXTERNAL_ASSET.search(html)
    if external:
        raise ValueError(f"rendered page loads an asset from the internet: {external.group(0)}")
    return html
