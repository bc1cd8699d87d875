"""The demo district (鲤城区 Licheng, Quanzhou), built deterministically. (To be written.)"""

from __future__ import annotations

from sqlalchemy.engine import Engine


def is_loaded(engine: Engine) -> bool:
    raise NotImplementedError


def load_demo(engine: Engine, seed: int, incidents: int, show_progress: bool = True) -> dict:
    raise NotImplementedError


def format_summary(summary: dict) -> str:
    raise NotImplementedError
