"""Races through the HTTP API: 20 requests released together (a barrier), each thread with
its own test client of one app over the real database. None may answer 500; each race
ends with one winner."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from mapsvc.config import Settings
from tests.fixtures.incidents import ll

THREADS = 20


@pytest.fixture
def app(district, make_app):
    return make_app(district.engine)


@pytest.fixture
def client(app):
    return app.test_client()


def race(app, client, request: Callable[[Any, int], Any], n: int = THREADS) -> list[Any]:
    """``request(test_client, i)`` in ``n`` threads released at once; the responses.

    Each thread has its own test client, made like ``client`` (same headers), so the
    requests run concurrently in the one app as a threaded server runs them."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        c = app.test_client()
        c.environ_base.update(client.environ_base)
        barrier.wait()
        out[i] = request(c, i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    return out


def _staff(district, n: int) -> list[int]:
    with district.engine.begin() as c:
        return [
            c.scalar(
                sa.text(
                    "INSERT INTO staff (code, name, role) VALUES (:c, :c, 'alley_chief') "
                    "RETURNING id"
                ),
                {"c": f"http-racer{i}"},
            )
            for i in range(n)
        ]


def _current_chiefs(district, segment_id: int) -> list[int]:
    today = Settings().today()
    with district.engine.connect() as c:
        return c.scalars(
            sa.text(
                "SELECT staff_id FROM assignment WHERE segment_id = :s AND role = 'alley_chief' "
                "AND valid_from <= :d AND (valid_to IS NULL OR valid_to >= :d)"
            ),
            {"s": segment_id, "d": today},
        ).all()


def test_twenty_chiefs_put_at_once_leave_one(app, client, district) -> None:
    seg = district.segment["seg1"]
    racers = _staff(district, THREADS)
    responses = race(
        app, client, lambda c, i: c.put(f"/api/segments/{seg}/chief", json={"staff": racers[i]})
    )
    codes = Counter(r.status_code for r in responses)
    assert set(codes) <= {200, 409}, codes
    assert all("error" in r.get_json() for r in responses if r.status_code == 409)
    (chief,) = _current_chiefs(district, seg)
    assert chief in racers
    # the winner the API shows is the one in post
    features = client.get("/api/segments").get_json()["features"]
    shown = [f["properties"]["chief_name"] for f in features if f["properties"]["code"] == "seg1"]
    assert shown == [f"http-racer{racers.index(chief)}"]


def test_the_same_chief_put_twenty_times_is_one_post(app, client, district) -> None:
    seg = district.segment["seg2"]
    (racer,) = _staff(district, 1)
    responses = race(
        app, client, lambda c, i: c.put(f"/api/segments/{seg}/chief", json={"staff": racer})
    )
    assert [r.status_code for r in responses] == [200] * THREADS
    assert len({r.get_json()["assignment_id"] for r in responses}) == 1
    assert _current_chiefs(district, seg) == [racer]


def test_twenty_posts_of_one_external_id_are_one_201(app, client, district) -> None:
    lon, lat = ll(200, 170)
    body = {"category": "road", "lon": lon, "lat": lat, "external_id": "12345-http"}
    responses = race(app, client, lambda c, i: c.post("/api/incidents", json=body))
    codes = Counter(r.status_code for r in responses)
    assert codes == {201: 1, 409: THREADS - 1}, codes
    for r in responses:
        if r.status_code == 409:
            assert r.get_json()["field"] == "external_id"
            assert "12345-http" in r.get_json()["error"]
    with district.engine.connect() as c:
        n = c.scalar(sa.text("SELECT count(*) FROM incident WHERE external_id = '12345-http'"))
    assert n == 1


def test_rating_racing_a_reopen_over_http(app, client, district) -> None:
    lon, lat = ll(200, 170)
    for _ in range(5):
        r = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
        iid = r.get_json()["id"]
        for st in ("dispatched", "in_hand", "verified", "closed"):
            url = f"/api/incidents/{iid}/transitions"
            assert client.post(url, json={"state": st}).status_code == 200
        rated, reopened = race(
            app,
            client,
            lambda c, i, iid=iid: (
                c.post(f"/api/incidents/{iid}/rating", json={"rating": 5})
                if i == 0
                else c.post(f"/api/incidents/{iid}/transitions", json={"state": "reopened"})
            ),
            n=2,
        )
        assert reopened.status_code == 200
        assert rated.status_code in (200, 409), rated.get_json()
        now = client.get(f"/api/incidents/{iid}").get_json()
        assert (now["state"], now["rating"]) == ("reopened", None)
