"""The HTTP servers that run the app: gunicorn in production, Werkzeug's only for development.

Production is gunicorn's master process with ``server_workers`` forked worker processes of
``server_threads`` threads each (the ``gthread`` worker). Processes use both cores of a
small server despite the GIL; threads overlap the time a request waits for PostgreSQL.
``bench/bench_load.py`` measured it against waitress (one process, threads only) and
against Werkzeug's development server; ``docs/SCALING.md`` has the numbers.

Three things differ from a plain ``gunicorn mapsvc.app:create_app()``:

* the app is built, and everything a request may import is imported, in the master
  before the workers fork (:func:`preload`): threads of a new worker then never race on
  a half-imported module (pyproj's ``pyproj.database`` did, answering 500);
* Ctrl-C, SIGTERM and SIGHUP all stop the server gracefully (running requests finish,
  up to ``server_graceful_timeout``), and the master then returns to its caller, which
  stops the embedded database it started. gunicorn's SIGHUP would reload instead; a
  closed terminal sends SIGHUP and means "stop";
* responses name no server software or version (``Server: mapsvc``).
"""

from __future__ import annotations

import ast
import importlib
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask

from mapsvc.config import Settings

#: the value of the ``Server`` header: the service, without software names or versions
SERVER_NAME = "mapsvc"

#: packages whose code runs in requests; every module they import (at the top or inside a
#: function) is imported by :func:`preload`
SERVING_PACKAGES = ("mapsvc.core", "mapsvc.models", "mapsvc.services", "layers", "mapsvc.web")

#: access log lines: the usual combined format plus the time taken in milliseconds
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s "%(a)s" %(M)sms'


# --------------------------------------------------------------------------- preload


def _package_files(package: str) -> Iterator[Path]:
    pkg = importlib.import_module(package)
    for path in pkg.__path__:
        yield from sorted(Path(path).rglob("*.py"))


def imported_modules(packages: tuple[str, ...] = SERVING_PACKAGES) -> list[str]:
    """Every absolute module name imported anywhere in ``packages``' source files.

    Function-local imports count too: the house imports heavy optional libraries (pyproj,
    folium, geopandas, scipy...) inside the functions that need them, so importing the
    packages alone would leave those to the first requests.
    """
    names: set[str] = set()
    for package in packages:
        for file in _package_files(package):
            for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module)
                    names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return sorted(names)


def preload(packages: tuple[str, ...] = SERVING_PACKAGES) -> list[str]:
    """Import every module the serving packages import; return the names imported.

    ``from x import y`` names a module ``x.y`` or an attribute of ``x``; both are tried.
    A name that is an attribute and not a module is skipped; a module that exists and fails
    to import raises, so a broken installation stops the server at start, not in a request.
    """
    loaded = []
    for name in imported_modules(packages):
        parent = name.rpartition(".")[0]
        if parent and parent in sys.modules and not hasattr(sys.modules[parent], "__path__"):
            continue  # ``from module import function``: nothing more to import
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name and parent:
                continue  # ``from package import attribute``
            raise
        loaded.append(name)
    return loaded


# --------------------------------------------------------------------------- gunicorn


def _graceful_worker_signals(worker: Any) -> None:
    """In a worker: Ctrl-C and a closed terminal finish running requests, as SIGTERM does.

    The terminal sends SIGINT / SIGHUP to every process of the foreground group, the
    workers too; gunicorn's workers would drop their requests on SIGINT and die on SIGHUP.
    """
    signal.signal(signal.SIGINT, worker.handle_exit)
    signal.signal(signal.SIGHUP, worker.handle_exit)


def production_server(
    app: Flask, host: str, port: int, settings: Settings, on_ready: Callable[[], None]
) -> Any:
    """The gunicorn application serving ``app`` on ``host:port``; ``.run()`` serves until
    Ctrl-C, SIGTERM or SIGHUP, then ends by raising ``SystemExit(0)`` in the master.

    ``on_ready`` is called once the port is bound, before the workers start.

    The returned object is a ``gunicorn.app.base.BaseApplication``; its ``run`` forks the
    workers, so in a worker process the call never returns: the worker leaves through
    ``SystemExit`` when it stops. A caller that cleans up after ``run`` must check that it
    is still the process that called it.
    """
    import gunicorn.http.wsgi
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    # gunicorn writes its name into every response's Server header and has no setting
    # for it; the service names itself instead
    gunicorn.http.wsgi.SERVER = SERVER_NAME

    class _Arbiter(Arbiter):
        """gunicorn's master, where SIGINT and SIGHUP stop gracefully like SIGTERM."""

        def handle_int(self) -> None:
            self.handle_term()

        def handle_hup(self) -> None:
            self.handle_term()

    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {
        "bind": [bind],
        "worker_class": "gthread",
        "workers": int(settings.server_workers),
        "threads": int(settings.server_threads),
        "graceful_timeout": int(settings.server_graceful_timeout),
        "preload_app": True,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "mapsvc",
        "when_ready": lambda arbiter: on_ready(),
        "post_worker_init": _graceful_worker_signals,
    }

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:
                # gunicorn >= 24 would open a control socket in the working directory
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Flask:
            return app

        def run(self) -> None:
            _Arbiter(self).run()

    return _Server()


# --------------------------------------------------------------------------- development


def dev_server(app: Flask, host: str, port: int) -> None:
    """Werkzeug's development server (one process, a thread per request, debugger off);
    returns on KeyboardInterrupt."""
    from werkzeug.serving import WSGIRequestHandler, run_simple

    class _Handler(WSGIRequestHandler):
        def version_string(self) -> str:
            return SERVER_NAME

    run_simple(host, port, app, threaded=True, use_reloader=False, request_handler=_Handler)
