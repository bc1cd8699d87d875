"""The floors of the house hold by themselves: no module imports a higher floor, no cycles.

Every module of ``mapsvc`` and ``layers`` is read (its function-local imports too) and each
import is checked against the floor plan of ``docs/ARCHITECTURE.md``:

====  ==========================================================================
 5    the package root, the app factory, the web (``mapsvc.web``), the CLI
 4    map layers (``layers``)
 3    the demo generator (``mapsvc.demo``)
 2    domain services (``mapsvc.services``)
 1    data: models, migrations, database access (``mapsvc.models``, ``mapsvc.db``)
 0    ground: configuration and the shared vocabulary (``mapsvc.config``, ``mapsvc.core``)
====  ==========================================================================

A module may import its own floor and those below. Some libraries belong to one floor:
only the web and the CLI speak Flask or click, and only layers and the web draw with
folium; the floors below them must not import those at all.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent

#: (module prefix, floor), longest prefix wins
FLOORS: list[tuple[str, int]] = [
    ("mapsvc", 5),
    ("mapsvc.app", 5),
    ("mapsvc.cli", 5),
    ("mapsvc.chromium", 5),
    ("mapsvc.commands", 5),
    ("mapsvc.web", 5),
    ("layers", 4),
    ("mapsvc.demo", 3),
    ("mapsvc.services", 2),
    ("mapsvc.models", 1),
    ("mapsvc.migrations", 1),
    ("mapsvc.db", 1),
    ("mapsvc.config", 0),
    ("mapsvc.core", 0),
]
FLOOR_NAMES = {5: "web/CLI", 4: "layers", 3: "demo", 2: "services", 1: "data", 0: "ground"}

#: third-party packages a floor below ``floor`` must not import
LIBRARY_FLOOR = {
    "flask": 5,
    "flask_babel": 5,
    "werkzeug": 5,
    "click": 5,
    "tqdm": 5,
    "folium": 4,
    "branca": 4,
}


def floor_of(module: str) -> int | None:
    """The floor of a project module, or None for a module outside the project."""
    best: tuple[int, int] | None = None
    for prefix, floor in FLOORS:
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > best[0]:
                best = (len(prefix), floor)
    return None if best is None else best[1]


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    path: Path
    line: int


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_project_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imports_of(path: Path, root: Path) -> list[Import]:
    """Every import in ``path``, at module level or inside functions, as module names.

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module of the
    project, else as importing ``pkg``; relative imports are resolved.
    """
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: list[Import] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend(Import(me, a.name, path, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(p for p in [*base_parts, node.module or ""] if p)
            else:
                base = node.module or ""
            for a in node.names:
                sub = f"{base}.{a.name}"
                target = sub if is_project_module(sub, root) else base
                out.append(Import(me, target, path, node.lineno))
    return out


def project_files(root: Path) -> list[Path]:
    files = [*root.glob("mapsvc/**/*.py"), *root.glob("layers/**/*.py")]
    return sorted(p for p in files if "versions" not in p.parent.parts)


def floor_violations(root: Path) -> list[str]:
    """Imports of a higher floor, or of a library above the importer's floor."""
    found: list[str] = []
    for path in project_files(root):
        for imp in imports_of(path, root):
            mine = floor_of(imp.importer)
            theirs = floor_of(imp.imported)
            where = f"{imp.path.relative_to(root)}:{imp.line}"
            if mine is None:
                continue
            if theirs is not None and theirs > mine:
                found.append(
                    f"{where}: {imp.importer} ({FLOOR_NAMES[mine]}) imports {imp.imported} "
                    f"({FLOOR_NAMES[theirs]})"
                )
            top = imp.imported.split(".")[0]
            if top in LIBRARY_FLOOR and LIBRARY_FLOOR[top] > mine:
                found.append(
                    f"{where}: {imp.importer} ({FLOOR_NAMES[mine]}) imports {top}, which only "
                    f"the {FLOOR_NAMES[LIBRARY_FLOOR[top]]} floor and above may use"
                )
    return found


def import_cycles(root: Path) -> list[list[str]]:
    """Cycles among the project's modules (a package importing its own parts is no cycle)."""
    graph = nx.DiGraph()
    for path in project_files(root):
        for imp in imports_of(path, root):
            if floor_of(imp.imported) is None or imp.imported == imp.importer:
                continue
            graph.add_edge(imp.importer, imp.imported)
    return [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]


def test_no_module_imports_a_higher_floor() -> None:
    assert floor_violations(ROOT) == []


def test_no_import_cycles() -> None:
    assert import_cycles(ROOT) == []


def test_every_project_module_has_a_floor() -> None:
    names = [module_name(p, ROOT) for p in project_files(ROOT)]
    assert len(names) > 60
    assert [n for n in names if floor_of(n) is None] == []


def test_the_checker_sees_a_bad_import(tmp_path: Path) -> None:
    """The checks above fail on the kinds of import they exist to catch."""
    (tmp_path / "mapsvc" / "services").mkdir(parents=True)
    (tmp_path / "mapsvc" / "web").mkdir()
    (tmp_path / "layers").mkdir()
    for pkg in ("mapsvc", "mapsvc/services", "mapsvc/web", "layers"):
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "layers" / "base.py").write_text("BBox = tuple\n")
    (tmp_path / "mapsvc" / "web" / "views.py").write_text("from mapsvc.services import a\n")
    (tmp_path / "mapsvc" / "services" / "a.py").write_text(
        "def f():\n    from layers.base import BBox\n    import flask\n    return BBox, flask\n"
    )
    (tmp_path / "mapsvc" / "services" / "b.py").write_text("from . import c\n")
    (tmp_path / "mapsvc" / "services" / "c.py").write_text("from mapsvc.services import b\n")
    found = floor_violations(tmp_path)
    assert len(found) == 2, found
    assert found[0].startswith("mapsvc/services/a.py:2: mapsvc.services.a (services) imports")
    assert "layers.base (layers)" in found[0]
    assert "imports flask" in found[1]
    assert import_cycles(tmp_path) == [["mapsvc.services.b", "mapsvc.services.c"]]


def test_services_and_demo_run_without_flask_or_folium() -> None:
    """Importing every service (and the demo) loads no web or drawing library."""
    names = [
        module_name(p, ROOT)
        for p in project_files(ROOT)
        if (floor_of(module_name(p, ROOT)) or 0) <= 3 and p.name != "env.py"  # Alembic's script
    ]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n"
        "    importlib.import_module(n)\n"
        "bad = sorted(m for m in ('flask', 'folium', 'branca', 'click', 'layers', 'mapsvc.web',"
        " 'mapsvc.commands') if m in sys.modules)\n"
        "print(bad)\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert res.returncode == 0, res.stderr
    assert len(names) > 30
    assert res.stdout.strip() == "[]", res.stdout
