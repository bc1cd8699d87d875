"""Default incident categories for city grid management (网格化管理事件分类).

These rows seed ``incident_category``; they are also the Open311 ``services`` list, so the
codes are stable, lower-case ASCII identifiers. The groups follow the usual split of a
district's grid-management catalogue: city appearance (市容环境), public facilities
(公共设施), social affairs (社会事务), safety (安全隐患) and livelihood services (民生服务).
``default_severity`` is the class an incident of that kind usually gets on intake
(小微 minor, 一般 ordinary, 较大 major, 重大 grave); dispatchers may change it.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from mapsvc.models import IncidentCategory


class Category(NamedTuple):
    code: str
    name_zh: str
    name_en: str
    group: str
    default_severity: str


#: the default catalogue, in display order
DEFAULT_CATEGORIES: tuple[Category, ...] = (
    Category(
        "street_vending", "占道经营", "Street vending on the roadway", "city_appearance", "minor"
    ),
    Category("clutter", "乱堆乱放", "Clutter and stacked goods", "city_appearance", "minor"),
    Category("illegal_building", "违章搭建", "Illegal construction", "city_appearance", "ordinary"),
    Category("sanitation", "环境卫生", "Street cleanliness", "city_appearance", "minor"),
    Category("garbage", "垃圾清运", "Garbage not collected", "city_appearance", "minor"),
    Category("illegal_parking", "违规停车", "Illegal parking", "city_appearance", "minor"),
    Category("illegal_ads", "乱贴乱画", "Fly-posting and graffiti", "city_appearance", "minor"),
    Category("greenery", "绿化损毁", "Damaged greenery and trees", "public_facilities", "minor"),
    Category("street_light", "路灯故障", "Street light out", "public_facilities", "minor"),
    Category(
        "road_damage", "道路破损", "Damaged road or pavement", "public_facilities", "ordinary"
    ),
    Category(
        "manhole_cover", "井盖缺失", "Missing or broken manhole cover", "public_facilities", "major"
    ),
    Category("water_supply", "供水故障", "Water supply problem", "public_facilities", "ordinary"),
    Category("drainage", "排水不畅", "Blocked drain or flooding", "public_facilities", "ordinary"),
    Category("noise", "噪音扰民", "Noise nuisance", "social_affairs", "minor"),
    Category("neighbour_dispute", "邻里纠纷", "Neighbour dispute", "social_affairs", "ordinary"),
    Category("elderly_care", "困难帮扶", "Help for vulnerable residents", "livelihood", "ordinary"),
    Category("safety_hazard", "安全隐患", "Safety hazard", "safety", "major"),
    Category("fire_lane", "消防通道堵塞", "Blocked fire lane", "safety", "major"),
    Category("gas_leak", "燃气泄漏", "Gas leak", "safety", "grave"),
)

CATEGORY_CODES: tuple[str, ...] = tuple(c.code for c in DEFAULT_CATEGORIES)


def ensure_categories(session: Session) -> int:
    """Insert the default categories that are missing; return how many were added.

    Existing rows are left alone, so names or severities a district has edited survive a
    re-run (and a demo reload). The caller owns the transaction.
    """
    stmt = (
        insert(IncidentCategory)
        .values([c._asdict() for c in DEFAULT_CATEGORIES])
        .on_conflict_do_nothing(index_elements=["code"])
        .returning(IncidentCategory.code)
    )
    return len(session.execute(stmt).all())


def category_names(session: Session) -> dict[str, tuple[str, str]]:
    """``{code: (name_zh, name_en)}`` of every category in the database."""
    rows = session.execute(
        sa.select(IncidentCategory.code, IncidentCategory.name_zh, IncidentCategory.name_en)
    )
    return {code: (zh, en) for code, zh, en in rows}
