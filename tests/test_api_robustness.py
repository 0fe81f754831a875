"""Odd input to the simulator API: always a clear JSON 4xx, never a 500.

The first half drives the app in-process; the second half speaks raw
HTTP to the real server (gunicorn over FerretDB), since chunked bodies,
lying lengths and percent-encoding pass through gunicorn before the app.
"""

import json
import socket

import pytest
from conftest import SIMULATOR_AUTH


def assert_json_error(res, status):
    assert res.status_int == status
    assert res.content_type == "application/json"
    assert res.json["status"] == status
    assert res.json["error_msg"]


@pytest.mark.parametrize("path", ["/msgs/%C0%AF", "/msgs/%E2%82",
                                  "/fllws/%ED%A0%80", "/nowhere/%FF"])
def test_a_path_that_is_not_utf8_answers_400_wherever_it_points(api, path):
    assert_json_error(api.get(path, latest=5), 400)
    assert api.get("/latest").json["latest"] == 5


@pytest.mark.parametrize("path, name", [
    ("/msgs/a%2Fb", "a/b"), ("/msgs/nul%00l", "nul\x00l"),
    ("/msgs/%25ZZ", "%ZZ"), ("/msgs/%2520", "%20"),
])
def test_odd_but_valid_percent_encodings_name_a_user(api, path, name):
    assert_json_error(api.get(path), 404)
    assert api.register(name).status_int == 204
    assert api.post(path, {"content": "hi"}).status_int == 204
    assert [m["user"] for m in api.get(path).json] == [name]


@pytest.mark.parametrize("depth", [5_000, 30_000])
def test_deeply_nested_json_answers_400(api, depth):
    api.register("alice")
    body = b"[" * depth + b"]" * depth
    assert_json_error(api.post("/msgs/alice", body), 400)


@pytest.mark.parametrize("body", [
    {"username": "\ud800", "email": "a@b", "pwd": "x"},
    {"username": "u", "email": "a@b\udfff", "pwd": "x"},
    {"username": "u", "email": "a@b", "pwd": "\ud800"},
])
def test_lone_surrogates_in_a_registration_answer_400(api, body):
    assert_json_error(api.post("/register", body), 400)


def test_lone_surrogates_in_a_message_or_follow_answer_400(api):
    api.register("alice")
    assert_json_error(api.post("/msgs/alice", {"content": "a\udc00"}), 400)
    assert_json_error(api.post("/fllws/alice", {"follow": "\ud800"}), 400)
    assert api.get("/msgs").json == []


@pytest.mark.parametrize("value", ["9" * 5000, "10001", "0" * 40 + "3"])
def test_a_huge_no_lists_at_most_the_maximum(api, value):
    api.register("alice")
    api.post("/msgs/alice", {"content": "hi"})
    res = api.get("/msgs", no=value)
    assert res.status_int == 200
    assert len(res.json) == 1


@pytest.mark.parametrize("value", ["1_000", "+5", " 6", "٣", "0x10",
                                   "9" * 5000, "-"])
def test_latest_must_be_plain_ascii_digits(api, value):
    api.get("/latest", latest=2)
    api.get("/latest", latest=value)
    assert api.get("/latest").json["latest"] == 2


def test_a_negative_latest_is_an_integer_and_is_recorded(api):
    api.get("/latest", latest=-7)
    assert api.get("/latest").json["latest"] == -7


@pytest.mark.parametrize("method", ["DELETE", "PUT", "PATCH", "OPTIONS"])
def test_an_unknown_method_answers_405_and_records_latest(api, method):
    res = api.request(method, "/msgs", latest=31)
    assert_json_error(res, 405)
    assert res.headers["Allow"] == "GET"
    assert api.get("/latest").json["latest"] == 31


def test_head_answers_like_get_without_a_body(api):
    res = api.request("HEAD", "/latest")
    assert res.status_int == 200
    assert res.body == b""


@pytest.mark.parametrize("body", [b"null", b"3", b"true", b"NaN",
                                  b'{"content": "x"} trailing'])
def test_json_that_is_not_one_object_answers_400(api, body):
    api.register("alice")
    assert_json_error(api.post("/msgs/alice", body), 400)


def test_extra_fields_in_a_body_are_ignored(api):
    body = {"username": "u", "email": "a@b", "pwd": "x", "admin": True}
    assert api.post("/register", body).status_int == 204


def test_a_follow_of_oneself_is_stored_like_any_other(api):
    api.register("alice")
    assert api.post("/fllws/alice", {"follow": "alice"}).status_int == 204
    assert api.get("/fllws/alice").json == {"follows": ["alice"]}


# The real server --------------------------------------------------------

@pytest.fixture(scope="module")
def alice(stack):
    """Register alice on the real server; return the server."""
    user = json.dumps({"username": "alice", "email": "a@b",
                       "pwd": "x"}).encode()
    raw_request(stack, "POST", "/api/register", user)
    return stack


def raw_request(stack, method, path, body=b"", headers=None):
    """Send bytes as they are; return status, headers and body."""
    fields = {"Host": "localhost", "Connection": "close",
              "Content-Type": "application/json",
              "Authorization": SIMULATOR_AUTH}
    if body is not None:
        fields["Content-Length"] = str(len(body))
    fields.update(headers or {})
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items()
                   if value is not None)
    data = f"{method} {path} HTTP/1.1\r\n{head}\r\n".encode() + (body or b"")

    with socket.create_connection(("127.0.0.1", stack.port), 5) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, head.decode("latin1"), payload


def chunked(body, size=7):
    """Return body in chunked transfer coding."""
    parts = [body[i:i + size] for i in range(0, len(body), size)]
    coded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return coded + b"0\r\n\r\n"


def messages(stack):
    status, _, payload = raw_request(stack, "GET", "/api/msgs/alice", None)
    assert status == 200
    return [m["content"] for m in json.loads(payload)]


@pytest.mark.slow
@pytest.mark.usefixtures("alice")
def test_a_chunked_body_is_read_whole(stack):
    body = chunked(json.dumps({"content": "sent in chunks"}).encode())
    status, _, _ = raw_request(stack, "POST", "/api/msgs/alice", body,
                               {"Content-Length": None,
                                "Transfer-Encoding": "chunked"})
    assert status == 204
    assert messages(stack)[0] == "sent in chunks"


@pytest.mark.slow
@pytest.mark.parametrize("body, status", [
    (chunked(b'{"content": "' + b"x" * 70_000 + b'"}', 4096), 413),
    (b"zz\r\nabc\r\n0\r\n\r\n", 400),
    (b"2\r\n{}XX0\r\n\r\n", 400),
])
@pytest.mark.usefixtures("alice")
def test_an_oversized_or_broken_chunked_body_answers_4xx(stack, body,
                                                         status):
    answer, _, payload = raw_request(stack, "POST", "/api/msgs/alice", body,
                                     {"Content-Length": None,
                                      "Transfer-Encoding": "chunked"})
    assert answer == status
    assert json.loads(payload)["status"] == status


@pytest.mark.slow
@pytest.mark.usefixtures("alice")
def test_a_content_length_shorter_than_the_body_answers_400(stack):
    body = json.dumps({"content": "cut short"}).encode()
    status, _, payload = raw_request(stack, "POST", "/api/msgs/alice", body,
                                     {"Content-Length": "5"})
    assert status == 400
    assert json.loads(payload)["error_msg"] == "The body is not valid JSON"


@pytest.mark.slow
@pytest.mark.parametrize("length", ["99999999999999999999", "65537"])
@pytest.mark.usefixtures("alice")
def test_a_content_length_over_the_limit_answers_413_unread(stack, length):
    status, _, payload = raw_request(stack, "POST", "/api/msgs/alice",
                                     b"{}", {"Content-Length": length})
    assert status == 413
    assert json.loads(payload)["status"] == 413


@pytest.mark.slow
@pytest.mark.parametrize("path, status", [
    ("/api/msgs/%C0%AF", 400), ("/api/msgs/%FF", 400),
    ("/api/msgs/%ZZ", 404), ("/api/msgs/alice%", 404),
    ("/api/msgs/a%2Fb", 404), ("/api/msgs/%00", 404),
    ("/api/%6Dsgs/alice", 200), ("/api/msgs?no=" + "9" * 4000, 200),
])
@pytest.mark.usefixtures("alice")
def test_percent_encodings_through_gunicorn(stack, path, status):
    answer, head, payload = raw_request(stack, "GET", path, None)
    assert answer == status
    assert "Content-Type: application/json" in head
    json.loads(payload)


@pytest.mark.slow
@pytest.mark.usefixtures("alice")
def test_head_and_options_through_gunicorn(stack):
    status, _, payload = raw_request(stack, "HEAD", "/api/msgs", None)
    assert (status, payload) == (200, b"")

    status, head, payload = raw_request(stack, "OPTIONS", "/api/msgs", None)
    assert status == 405
    assert "Allow: GET" in head
    assert json.loads(payload)["status"] == 405


@pytest.mark.slow
@pytest.mark.parametrize("length", ["-1", "abc", "1, 2"])
@pytest.mark.usefixtures("alice")
def test_a_malformed_content_length_is_refused_by_gunicorn(stack, length):
    # NOTE: gunicorn refuses these itself, before the app, with an HTML
    # page; docs/api.md says so. The point is a 400, not a hang or a 500.
    status, _, _ = raw_request(stack, "POST", "/api/msgs/alice", b"{}",
                               {"Content-Length": length})
    assert status == 400
