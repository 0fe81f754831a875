"""The simulator API, row by row and error by error of its contract."""

import json

import pytest
from conftest import SIMULATOR_AUTH

FORBIDDEN = {"status": 403,
             "error_msg": "You are not authorized to use this resource!"}


def messages(res):
    return [(m["user"], m["content"]) for m in res.json]


def test_latest_is_minus_one_before_anything(api):
    res = api.get("/latest")
    assert res.status_int == 200
    assert res.json == {"latest": -1}


def test_latest_records_the_last_action_id(api):
    api.register("alice", latest=7)
    api.get("/msgs", latest=12)

    assert api.get("/latest").json == {"latest": 12}


def test_latest_is_recorded_even_when_the_request_is_refused(api):
    api.get("/msgs", auth="Basic bm9ib2R5Om5vbmU=", latest=3)
    assert api.get("/latest").json["latest"] == 3

    api.post("/msgs/nobody", {"content": "x"}, latest=4)
    assert api.get("/latest").json["latest"] == 4

    api.post("/register", b"{not json", latest=5)
    assert api.get("/latest").json["latest"] == 5


def test_latest_is_recorded_on_an_unknown_path(api):
    assert api.get("/nothing/here", latest=9).status_int == 404
    assert api.get("/latest").json["latest"] == 9


@pytest.mark.parametrize("value", ["abc", "1.5", "", "99999999999999999999"])
def test_latest_that_is_not_a_storable_integer_changes_nothing(api, value):
    api.get("/latest", latest=2)
    api.get("/latest", latest=value)
    assert api.get("/latest").json["latest"] == 2


def test_register_answers_204_with_an_empty_body(api):
    res = api.register("Roger Histand", "roger@example.com", "pw")
    assert res.status_int == 204
    assert res.body == b""


@pytest.mark.parametrize("body, error", [
    ({"email": "a@b", "pwd": "x"}, "You have to enter a username"),
    ({"username": "", "email": "a@b", "pwd": "x"},
     "You have to enter a username"),
    ({"username": "u", "pwd": "x"},
     "You have to enter a valid email address"),
    ({"username": "u", "email": "", "pwd": "x"},
     "You have to enter a valid email address"),
    ({"username": "u", "email": "nope", "pwd": "x"},
     "You have to enter a valid email address"),
    ({"username": "u", "email": "a@b"}, "You have to enter a password"),
    ({"username": "u", "email": "a@b", "pwd": ""},
     "You have to enter a password"),
])
def test_register_refuses_missing_fields(api, body, error):
    res = api.post("/register", body)
    assert res.status_int == 400
    assert res.json == {"status": 400, "error_msg": error}


def test_register_refuses_a_taken_username(api):
    api.register("bob")
    res = api.register("bob", "other@example.com")
    assert res.status_int == 400
    assert res.json["error_msg"] == "The username is already taken"


def test_register_needs_no_authorization(api):
    assert api.register("carol", auth=None).status_int == 204


@pytest.mark.parametrize("method, path", [
    ("GET", "/msgs"), ("GET", "/msgs/alice"), ("POST", "/msgs/alice"),
    ("GET", "/fllws/alice"), ("POST", "/fllws/alice"),
])
@pytest.mark.parametrize("auth", [None, "Basic c2ltdWxhdG9yOndyb25n",
                                  SIMULATOR_AUTH + " "])
def test_protected_endpoints_refuse_other_credentials(api, method, path,
                                                      auth):
    api.register("alice")
    res = api.request(method, path, {"content": "hi"}, auth=auth)
    assert res.status_int == 403
    assert res.json == FORBIDDEN


def test_posted_messages_are_listed_newest_first(api):
    api.register("alice")
    api.register("bob")
    for user, text in [("alice", "one"), ("bob", "two"), ("alice", "3")]:
        res = api.post(f"/msgs/{user}", {"content": text})
        assert res.status_int == 204
        assert res.body == b""

    everyone = api.get("/msgs")
    assert everyone.status_int == 200
    assert messages(everyone) == [("alice", "3"), ("bob", "two"),
                                  ("alice", "one")]
    assert messages(api.get("/msgs/alice")) == [("alice", "3"),
                                                ("alice", "one")]


def test_a_message_has_content_pub_date_and_user(api):
    api.register("alice")
    api.post("/msgs/alice", {"content": "hello"})

    [message] = api.get("/msgs").json
    assert set(message) == {"content", "pub_date", "user"}
    assert isinstance(message["pub_date"], int)


def test_no_limits_the_number_of_messages(api):
    api.register("alice")
    for i in range(5):
        api.post("/msgs/alice", {"content": f"m{i}"})

    assert [m["content"] for m in api.get("/msgs", no=2).json] == ["m4",
                                                                   "m3"]
    assert len(api.get("/msgs/alice", no=3).json) == 3
    assert api.get("/msgs", no=0).json == []
    assert len(api.get("/msgs", no="0000001").json) == 1
    assert len(api.get("/msgs").json) == 5


def test_default_no_is_100(api):
    api.register("alice")
    for i in range(105):
        api.post("/msgs/alice", {"content": f"m{i}"})

    assert len(api.get("/msgs").json) == 100
    assert len(api.get("/msgs/alice").json) == 100


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "١٢"])
def test_no_that_is_not_a_non_negative_integer_is_refused(api, value):
    res = api.get("/msgs", no=value)
    assert res.status_int == 400
    assert res.json["status"] == 400


def test_flagged_messages_never_appear(api, db):
    api.register("alice")
    api.post("/msgs/alice", {"content": "fine"})
    api.post("/msgs/alice", {"content": "rude"})
    db.messages.update_one({"text": "rude"}, {"$set": {"flagged": True}})

    assert messages(api.get("/msgs")) == [("alice", "fine")]
    assert messages(api.get("/msgs/alice")) == [("alice", "fine")]


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/msgs/nobody", None),
    ("POST", "/msgs/nobody", {"content": "x"}),
    ("GET", "/fllws/nobody", None),
    ("POST", "/fllws/nobody", {"follow": "alice"}),
])
def test_unknown_users_answer_404(api, method, path, body):
    api.register("alice")
    res = api.request(method, path, body)
    assert res.status_int == 404
    assert res.json["status"] == 404


@pytest.mark.parametrize("action", ["follow", "unfollow"])
def test_following_an_unknown_user_answers_404(api, action):
    api.register("alice")
    res = api.post("/fllws/alice", {action: "nobody"})
    assert res.status_int == 404


def test_follows_are_listed_in_the_order_followed(api):
    for name in ["alice", "bob", "carol", "dave"]:
        api.register(name)
    for other in ["dave", "bob", "carol"]:
        res = api.post("/fllws/alice", {"follow": other})
        assert res.status_int == 204
        assert res.body == b""

    assert api.get("/fllws/alice").json == {"follows": ["dave", "bob",
                                                        "carol"]}
    assert api.get("/fllws/alice", no=2).json == {"follows": ["dave",
                                                              "bob"]}
    assert api.get("/fllws/bob").json == {"follows": []}


def test_following_twice_stores_one_follow(api):
    api.register("alice")
    api.register("bob")
    assert api.post("/fllws/alice", {"follow": "bob"}).status_int == 204
    assert api.post("/fllws/alice", {"follow": "bob"}).status_int == 204

    assert api.get("/fllws/alice").json == {"follows": ["bob"]}


def test_unfollow_removes_a_follow_and_tolerates_none(api):
    api.register("alice")
    api.register("bob")
    api.post("/fllws/alice", {"follow": "bob"})

    assert api.post("/fllws/alice", {"unfollow": "bob"}).status_int == 204
    assert api.get("/fllws/alice").json == {"follows": []}
    assert api.post("/fllws/alice", {"unfollow": "bob"}).status_int == 204


@pytest.mark.parametrize("body", [{}, {"follow": "bob", "unfollow": "bob"},
                                  {"follow": ""}, {"follow": 3}])
def test_a_follow_request_must_name_exactly_one_user(api, body):
    api.register("alice")
    api.register("bob")
    res = api.post("/fllws/alice", body)
    assert res.status_int == 400
    assert res.json["status"] == 400


def test_usernames_with_spaces_and_unicode_work_percent_encoded(api):
    api.register("Roger Histand")
    api.register("Zoë Ørsted")
    api.post("/msgs/Roger%20Histand", {"content": "hej"})
    api.post("/fllws/Zo%C3%AB%20%C3%98rsted", {"follow": "Roger Histand"})

    assert messages(api.get("/msgs/Roger%20Histand")) == [("Roger Histand",
                                                           "hej")]
    assert api.get("/fllws/Zo%C3%AB%20%C3%98rsted").json == {
        "follows": ["Roger Histand"]}


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"',
                                  b"", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_answers_400(api, body):
    api.register("alice")
    for path in ["/register", "/msgs/alice", "/fllws/alice"]:
        res = api.post(path, body)
        assert res.status_int == 400, path
        assert res.json["status"] == 400


@pytest.mark.parametrize("field", ["username", "email", "pwd"])
def test_register_refuses_fields_that_are_not_strings(api, field):
    body = {"username": "u", "email": "a@b", "pwd": "x", field: ["x@y"]}
    res = api.post("/register", body)
    assert res.status_int == 400


@pytest.mark.parametrize("content", [None, "", 42, {"a": 1}])
def test_a_message_needs_text_content(api, content):
    api.register("alice")
    res = api.post("/msgs/alice", {"content": content})
    assert res.status_int == 400
    assert api.get("/msgs").json == []


def test_a_body_too_large_answers_413(api):
    api.register("alice")
    res = api.post("/msgs/alice", {"content": "x" * 70_000})
    assert res.status_int == 413
    assert res.json["status"] == 413


def test_an_unknown_method_answers_405_in_json(api):
    res = api.request("DELETE", "/msgs")
    assert res.status_int == 405
    assert res.json["status"] == 405


def test_a_path_that_is_not_utf8_answers_400(api):
    api.register("alice")
    res = api.get("/msgs/alice%FF")
    assert res.status_int == 400
    assert res.json["status"] == 400


def test_every_error_is_json(api):
    for res in [api.get("/msgs", auth=None), api.get("/nowhere"),
                api.post("/register", {})]:
        assert res.content_type == "application/json"
        assert json.loads(res.body)["error_msg"]


def test_a_user_unknown_a_moment_ago_can_post_once_registered(api):
    assert api.post("/msgs/newcomer", {"content": "x"}).status_int == 404
    api.register("newcomer")
    assert api.post("/msgs/newcomer", {"content": "x"}).status_int == 204
    assert messages(api.get("/msgs/newcomer")) == [("newcomer", "x")]
