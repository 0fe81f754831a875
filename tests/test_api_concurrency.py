"""Many clients at once against the real server end with consistent data.

Real parallel HTTP requests to gunicorn over FerretDB: racing duplicate
registrations, one user following, unfollowing and posting from many
threads. Speed is not judged here (see bench/api_latency.py), so the
client timeout is generous.
"""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pymongo
import pytest

import replay

pytestmark = pytest.mark.slow

CLIENTS = 16
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def db(stack):
    """Return the database the app writes to, for checking its state."""
    client = pymongo.MongoClient(stack.db_server.uri)
    yield client.minitwit
    client.close()


def send_all(stack, requests):
    """Send requests from CLIENTS threads at once; return (status, body)."""
    target = replay.parse_base_url(stack.base_url + "/api")

    def send(numbered):
        number, request = numbered
        return replay.send(target, request, number, TIMEOUT)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(send, enumerate(requests, 1)))


def register(name):
    return replay.register_request(name)


def follow(who, verb, whom):
    return replay.Request(verb, "POST", "/fllws/" + replay.user_path(who),
                          {verb: whom}, 204)


def tweet(who, text):
    return replay.Request("tweet", "POST", "/msgs/" + replay.user_path(who),
                          {"content": text}, 204)


def statuses(answers):
    return Counter(status for status, _ in answers)


def test_racing_duplicate_registrations_make_one_user(stack, db):
    answers = send_all(stack, [register("Dup Licate")] * 48)

    assert db.users.count_documents({"username": "Dup Licate"}) == 1
    assert statuses(answers)[204] == 1
    refusals = [json.loads(body) for status, body in answers
                if status != 204]
    assert {r["error_msg"] for r in refusals} == {
        "The username is already taken"}


def test_parallel_follows_of_one_user_keep_each_once(stack, db):
    others = [f"Fan {i}" for i in range(24)]
    send_all(stack, [register(name) for name in ["Star", *others]])

    answers = send_all(stack, [follow("Star", "follow", name)
                               for name in others * 3])
    assert statuses(answers) == {204: len(others) * 3}
    follows = db.users.find_one({"username": "Star"})["follows"]
    assert len(follows) == len(set(follows)) == len(others)

    keep, drop = others[::2], others[1::2]
    answers = send_all(stack, [follow("Star", "unfollow", name)
                               for name in drop * 2]
                       + [follow("Star", "follow", name) for name in keep])
    assert set(statuses(answers)) == {204}
    names = {doc["username"] for doc in db.users.find(
        {"_id": {"$in": db.users.find_one({"username": "Star"})["follows"]}})}
    assert names == set(keep)


def test_parallel_posts_by_one_user_are_all_kept_in_order(stack, db):
    send_all(stack, [register("Poster")])
    texts = [f"message {i}" for i in range(300)]

    answers = send_all(stack, [tweet("Poster", text) for text in texts])
    assert statuses(answers) == {204: len(texts)}

    author = db.users.find_one({"username": "Poster"})["_id"]
    stored = list(db.messages.find({"author_id": author}))
    assert sorted(m["text"] for m in stored) == sorted(texts)
    assert len({m["seq"] for m in stored}) == len(texts)

    [(status, body)] = send_all(stack, [replay.Request(
        "GET", "GET", "/msgs/Poster?no=1000", None, 200)])
    listed = [m["content"] for m in json.loads(body)]
    newest_first = [m["text"] for m in sorted(stored, key=lambda m: m["seq"],
                                              reverse=True)]
    assert (status, listed) == (200, newest_first)


def test_users_posting_and_following_each_other_at_once(stack, db):
    crowd = [f"Crowd {i}" for i in range(12)]
    send_all(stack, [register(name) for name in crowd])

    work = []
    for i, name in enumerate(crowd):
        work += [tweet(name, f"{name} says {n}") for n in range(10)]
        work += [follow(name, "follow", other) for other in crowd[i + 1:]]
    answers = send_all(stack, work)
    assert statuses(answers) == {204: len(work)}

    for i, name in enumerate(crowd):
        user = db.users.find_one({"username": name})
        assert len(user["follows"]) == len(set(user["follows"]))
        assert len(user["follows"]) == len(crowd) - i - 1
        assert db.messages.count_documents({"author_id": user["_id"]}) == 10
