"""Inputs are bounded: request bodies (chunked ones too, against a live server) and text
fields (sized by their columns, refused by the database as well). Each bound is a named
error that changed nothing."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.fixtures.accounts import make_account
from tests.fixtures.incidents import ll
from tests.fixtures.web import LiveServer

LIMIT = 1024 * 1024
CHUNK = 64 * 1024


class CountingInput:
    """WSGI middleware recording how many body bytes the app read from the server."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.read = 0

    def __call__(self, environ, start_response):
        stream, outer = environ["wsgi.input"], self

        class Counted:
            def read(self, n: int = -1) -> bytes:
                data = stream.read(n)
                outer.read += len(data)
                return data

            def readline(self, n: int = -1) -> bytes:
                data = stream.readline(n)
                outer.read += len(data)
                return data

        environ["wsgi.input"] = Counted()
        return self.wsgi_app(environ, start_response)


@pytest.fixture
def app(district, make_app):
    return make_app(district.engine, MAX_CONTENT_LENGTH=LIMIT)


@pytest.fixture
def api_key(district) -> str:
    """Open311's api_key: the token of a hotline system's account."""
    return make_account(district.engine, "public")[1]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live(app, client) -> Iterator[tuple[LiveServer, CountingInput, dict[str, str]]]:
    counter = CountingInput(app.wsgi_app)
    app.wsgi_app = counter
    server = LiveServer(app)
    # the headers ``client`` sends (its credentials, if any), for the raw requests
    headers = {
        k[5:].replace("_", "-").title(): str(v)
        for k, v in client.environ_base.items()
        if k.startswith("HTTP_") and k != "HTTP_USER_AGENT"
    }
    yield server, counter, headers
    server.stop()


def _chunked(server: LiveServer, path: str, body: Iterator[bytes], ctype: str, headers: dict):
    """POST ``body`` with chunked transfer encoding (no Content-Length); (status, JSON)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(
            "POST", path, body=body, headers={"Content-Type": ctype, **headers}, encode_chunked=True
        )
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    finally:
        conn.close()


def _endless(total: int) -> Iterator[bytes]:
    for _ in range(total // CHUNK):
        yield b"x" * CHUNK


def _incidents(district) -> int:
    with district.engine.connect() as c:
        return c.scalar(sa.text("SELECT count(*) FROM incident"))


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/api/incidents", "application/json"),
        ("/api/patrol/tracks?staff=1", "application/gpx+xml"),
        ("/api/segments/assign", "text/csv"),
        ("/open311/v2/requests.json", "application/json"),
    ],
)
def test_a_chunked_body_past_the_limit_is_413_read_no_further(
    live, district, path: str, ctype: str
) -> None:
    server, counter, headers = live
    status, body = _chunked(server, path, _endless(40 * LIMIT), ctype, headers)
    assert status == 413
    message = body["error"] if isinstance(body, dict) else body[0]["description"]
    assert message == "the upload is larger than the limit of 1 MB"
    # the server read one byte past the limit, not the 40 MB sent
    assert counter.read == LIMIT + 1
    assert _incidents(district) == 0


def test_a_chunked_body_within_the_limit_is_read_whole(live, district) -> None:
    server, counter, headers = live
    lon, lat = ll(200, 170)
    padding = "说" * 1000  # a description near its bound, in UTF-8's 3 bytes a character
    doc = json.dumps({"category": "road", "lon": lon, "lat": lat, "description": padding})
    raw = doc.encode()
    pieces = (raw[i : i + 1000] for i in range(0, len(raw), 1000))
    status, body = _chunked(server, "/api/incidents", pieces, "application/json", headers)
    assert status == 201, body
    assert body["description"] == padding and counter.read == len(raw)
    # exactly the limit is still allowed; one byte more is not
    exact = json.dumps({"category": "road", "lon": lon, "lat": lat, "x": ""}).encode()
    exact = exact[:-2] + b'"' + b" " * (LIMIT - len(exact)) + b"}"
    assert len(exact) == LIMIT
    status, body = _chunked(server, "/api/incidents", iter([exact]), "application/json", headers)
    assert status == 201, body
    status, _ = _chunked(
        server, "/api/incidents", iter([exact + b" "]), "application/json", headers
    )
    assert status == 413
    assert _incidents(district) == 2


def test_a_description_has_a_size(client, district) -> None:
    lon, lat = ll(200, 170)
    body = {"category": "road", "lon": lon, "lat": lat}
    r = client.post("/api/incidents", json={**body, "description": "坑" * 5001})
    assert r.status_code == 400
    assert r.get_json() == {
        "error": "description is too long: 5001 characters, at most 5000",
        "field": "description",
    }
    assert _incidents(district) == 0
    r = client.post("/api/incidents", json={**body, "description": "坑" * 5000})
    assert r.status_code == 201
    # the database holds the same bound for any writer
    with pytest.raises(sa.exc.DataError, match="character varying\\(5000\\)"):
        with district.engine.begin() as c:
            c.execute(sa.text("UPDATE incident SET description = repeat('x', 5001)"))
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT char_length(description) FROM incident")) == 5000


def test_notes_have_a_size(client, district) -> None:
    lon, lat = ll(200, 170)
    inc = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": lat})
    iid = inc.get_json()["id"]
    url = f"/api/incidents/{iid}/transitions"
    r = client.post(url, json={"state": "dispatched", "note": "n" * 2001})
    assert r.status_code == 400 and r.get_json()["field"] == "note"
    assert "2001 characters, at most 2000" in r.get_json()["error"]
    after = client.get(f"/api/incidents/{iid}").get_json()
    assert after["state"] == "received" and len(after["events"]) == 1
    r = client.post(
        "/api/patrol/visits",
        json={"staff": district.staff["chief1"], "place": "某小区", "note": "n" * 2001},
    )
    assert r.status_code == 400 and r.get_json()["field"] == "note"
    r = client.post(
        "/api/patrol/visits",
        json={"staff": district.staff["chief1"], "place": "某" * 201},
    )
    assert r.status_code == 400 and "at most 200" in r.get_json()["error"]
    with district.engine.connect() as c:
        assert c.scalar(sa.text("SELECT count(*) FROM patrol_visit")) == 0


def test_open311_description_and_address_have_sizes(client, district, api_key) -> None:
    lon, lat = ll(200, 170)
    form = {"api_key": api_key, "service_code": "road", "lat": lat, "long": lon}
    r = client.post("/open311/v2/requests.json", data={**form, "description": "x" * 5001})
    assert r.status_code == 400
    assert r.get_json() == [
        {"code": 400, "description": "description is too long: 5001 characters, at most 5000"}
    ]
    r = client.post("/open311/v2/requests.json", data={**form, "address_string": "路" * 301})
    assert r.status_code == 400
    assert (
        "address_string is too long: 301 characters, at most 300" in r.get_json()[0]["description"]
    )
    assert _incidents(district) == 0


def test_a_csv_cell_too_big_to_read_is_a_named_400(client) -> None:
    r = client.post(
        "/api/segments/assign",
        data="segment,staff\n" + "x" * 200_000 + ",1\n",
        content_type="text/csv",
    )
    assert r.status_code == 400
    assert r.get_json()["error"].startswith("line 2 of the CSV cannot be read: field larger")


def test_coordinates_out_of_range_are_named_by_the_api_and_open311(
    client, district, api_key
) -> None:
    lon, _ = ll(200, 170)
    r = client.post("/api/incidents", json={"category": "road", "lon": lon, "lat": 500})
    assert r.status_code == 400
    assert r.get_json() == {
        "error": "latitude 500 out of range -90..90 in the request",
        "field": "lat",
    }
    form = {"api_key": api_key, "service_code": "road", "lat": 45, "long": 500}
    r = client.post("/open311/v2/requests.json", data=form)
    assert r.status_code == 400
    assert r.get_json() == [
        {"code": 400, "description": "longitude 500 out of range -180..180 in the request"}
    ]
    r = client.post(
        "/api/patrol/tracks",
        json={
            "staff": district.staff["chief1"],
            "points": [[lon, 24.9, 1767225600 + i] for i in range(3)] + [[lon, 95, 1767225700]],
        },
    )
    assert r.status_code == 400 and r.get_json()["field"] == "points"
    assert r.get_json()["error"].startswith("latitude 95 out of range -90..90 in point 4")
    assert _incidents(district) == 0
