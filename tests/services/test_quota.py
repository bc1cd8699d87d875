"""Quota formula, shortfall/surplus, coefficients from config and overrides, CSV/XLSX."""

from __future__ import annotations

import csv
import io
import math

import pytest
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from mapsvc.config import DEFAULTS, Settings
from mapsvc.core.errors import ValidationError
from mapsvc.services.quota import coefficients, quota_table, to_csv, to_xlsx
from tests.fixtures.staffing import COMMUNITIES, TODAY
from tests.services.test_density import expected_counts, geodesic_km2


def test_coefficients_config_and_overrides() -> None:
    assert coefficients(Settings()) == {
        k: float(v) for k, v in DEFAULTS["QUOTA_COEFFICIENTS"].items()
    }
    assert coefficients(Settings(), {"b": "3.5", "c": ""})["b"] == 3.5
    with pytest.raises(ValidationError, match="coefficient a"):
        coefficients(Settings(), {"a": "many"})
    with pytest.raises(ValidationError, match="coefficient c .*≥ 0"):
        coefficients(Settings(), {"c": -1})


@pytest.mark.parametrize("coef", [{"a": 8.0, "b": 2.0, "c": 1.0}, {"a": 3.0, "b": 10.0, "c": 0.5}])
def test_quota_formula_and_gap(staffing_db, coef: dict) -> None:
    with Session(staffing_db.engine) as s:
        table = quota_table(s, TODAY, coef, group="all")
        default = quota_table(s, TODAY, coef)
    assert default["group"] == "community_workers"  # quotas are set for community workers
    rows = {r["code"]: r for r in table["rows"]}
    counts = expected_counts("community", TODAY)
    assert set(rows) == {c[0] for c in COMMUNITIES}
    for code, _name, _sub, poly, pop, _hh, ent in COMMUNITIES:
        exact = coef["a"] * pop / 10000 + coef["b"] * geodesic_km2(poly) + coef["c"] * ent / 100
        r = rows[code]
        assert r["required_exact"] == pytest.approx(exact, abs=0.006)
        assert r["required"] == math.ceil(exact)
        assert r["actual"] == counts.get(code, {}).get("staff", 0)
        assert r["gap"] == r["actual"] - r["required"]
        assert r["status"] == (
            "shortfall" if r["gap"] < 0 else "surplus" if r["gap"] > 0 else "balanced"
        )
    t = table["totals"]
    assert t["required"] == sum(r["required"] for r in rows.values())
    assert t["shortfall"] == sum(-r["gap"] for r in rows.values() if r["gap"] < 0)


def test_quota_by_group(staffing_db) -> None:
    with Session(staffing_db.engine) as s:
        table = quota_table(s, TODAY, coefficients(Settings()), group="community_workers")
        with pytest.raises(ValidationError, match="group"):
            quota_table(s, TODAY, group="everyone")
    counts = expected_counts("community", TODAY)
    for r in table["rows"]:
        assert r["actual"] == counts.get(r["code"], {}).get("community_workers", 0)


def test_csv_and_xlsx_parse_back(staffing_db, tmp_path) -> None:
    with Session(staffing_db.engine) as s:
        table = quota_table(s, TODAY, coefficients(Settings()), group="all")
    path = tmp_path / "quota.csv"
    path.write_text(to_csv(table, "zh_CN"), encoding="utf-8-sig")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(table["rows"])
    by_code = {r["社区代码"]: r for r in rows}
    for r in table["rows"]:
        back = by_code[r["code"]]
        assert back["社区"] == r["name"]
        assert int(back["核定员额"]) == r["required"]
        assert int(back["实有人员"]) == r["actual"]
        assert float(back["面积（平方公里）"]) == pytest.approx(r["area_km2"])
        assert back["状态"] in {"缺编", "超编", "持平"}
    en = list(csv.DictReader(io.StringIO(to_csv(table, "en"))))
    assert en[0]["Community code"] == table["rows"][0]["code"]

    xpath = tmp_path / "quota.xlsx"
    xpath.write_bytes(to_xlsx(table, "zh_CN"))
    ws = load_workbook(xpath).active
    values = list(ws.iter_rows(values_only=True))
    header = values[0]
    assert header[0] == "社区代码" and "核定员额" in header
    body = values[1 : 1 + len(table["rows"])]
    for r, line in zip(table["rows"], body, strict=True):
        rec = dict(zip(header, line, strict=True))
        assert rec["社区代码"] == r["code"]
        assert rec["核定员额"] == r["required"]
        assert rec["实有人员"] == r["actual"]
        assert rec["超编（+）/ 缺编（−）"] == r["gap"]
    total = dict(zip(header, values[1 + len(table["rows"])], strict=True))
    assert total["社区代码"] == "合计"
    assert total["核定员额"] == table["totals"]["required"]
