"""The data layer, on mongomock and on the real local server."""

import threading

import pytest

import store


def user(db, name):
    uid = store.create_user(db, name, f"{name}@example.com", "hash")
    return store.get_user_by_id(db, uid)


def texts(messages):
    return [m["text"] for m in messages]


def test_create_user_refuses_a_taken_name(db):
    user(db, "alice")
    with pytest.raises(store.UsernameTaken):
        store.create_user(db, "alice", "other@example.com", "hash")
    assert db.users.count_documents({"username": "alice"}) == 1


def test_get_user_finds_by_exact_name(db):
    alice = user(db, "Alice Ünal")
    assert store.get_user(db, "Alice Ünal")["_id"] == alice["_id"]
    assert store.get_user(db, "alice ünal") is None


def test_follow_is_idempotent_and_keeps_order(db):
    alice, bob, carol = (user(db, n) for n in ["alice", "bob", "carol"])
    store.follow(db, alice["_id"], carol["_id"])
    store.follow(db, alice["_id"], bob["_id"])
    store.follow(db, alice["_id"], carol["_id"])

    alice = store.get_user(db, "alice")
    assert store.followed_usernames(db, alice, 10) == ["carol", "bob"]
    assert store.followed_usernames(db, alice, 1) == ["carol"]


def test_unfollow_is_idempotent(db):
    alice, bob = user(db, "alice"), user(db, "bob")
    store.follow(db, alice["_id"], bob["_id"])
    store.unfollow(db, alice["_id"], bob["_id"])
    store.unfollow(db, alice["_id"], bob["_id"])

    alice = store.get_user(db, "alice")
    assert store.followed_usernames(db, alice, 10) == []
    assert not store.is_following(alice, bob)


def test_sort_keys_increase_strictly(db):
    alice = user(db, "alice")
    keys = [store.add_message(db, alice, str(i), pub_date=100)
            for i in range(20)]
    assert keys == sorted(set(keys))


def test_timelines_are_newest_first_within_one_second(db):
    alice, bob = user(db, "alice"), user(db, "bob")
    for i in range(4):
        store.add_message(db, alice if i % 2 else bob, f"m{i}", pub_date=5)

    assert texts(store.public_timeline(db, 10)) == ["m3", "m2", "m1", "m0"]
    assert texts(store.user_timeline(db, alice, 10)) == ["m3", "m1"]


def test_home_timeline_has_mine_and_followed_only(db):
    alice, bob, carol = (user(db, n) for n in ["alice", "bob", "carol"])
    store.add_message(db, alice, "from alice")
    store.add_message(db, bob, "from bob")
    store.add_message(db, carol, "from carol")
    store.follow(db, alice["_id"], bob["_id"])

    alice = store.get_user(db, "alice")
    assert texts(store.home_timeline(db, alice, 10)) == ["from bob",
                                                          "from alice"]


def test_older_pages_continue_below_the_last_key(db):
    alice = user(db, "alice")
    for i in range(7):
        store.add_message(db, alice, f"m{i}")

    first = store.user_timeline(db, alice, 3)
    second = store.user_timeline(db, alice, 3, before=first[-1]["seq"])
    assert texts(first) == ["m6", "m5", "m4"]
    assert texts(second) == ["m3", "m2", "m1"]


def test_flagged_messages_are_left_out(db):
    alice = user(db, "alice")
    store.add_message(db, alice, "ok")
    store.add_message(db, alice, "hidden", flagged=True)

    assert texts(store.public_timeline(db, 10)) == ["ok"]
    assert texts(store.home_timeline(db, alice, 10)) == ["ok"]


def test_a_limit_of_zero_returns_nothing(db):
    alice = user(db, "alice")
    store.add_message(db, alice, "ok")
    assert store.public_timeline(db, 0) == []


def test_latest_round_trips(db):
    assert store.get_latest(db) == -1
    store.set_latest(db, 41)
    store.set_latest(db, 42)
    assert store.get_latest(db) == 42


def test_ensure_indexes_twice_is_harmless(db):
    store.ensure_indexes(db)
    names = {i["name"] for i in db.messages.list_indexes()}
    assert {"public_newest", "author_newest"} <= names


def test_racing_registrations_of_one_name_make_one_user(db):
    outcomes = []

    def register():
        try:
            store.create_user(db, "racer", "r@example.com", "hash")
            outcomes.append("created")
        except store.UsernameTaken:
            outcomes.append("taken")

    threads = [threading.Thread(target=register) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["created"] + ["taken"] * 7
    assert db.users.count_documents({"username": "racer"}) == 1


class RecordingDatabase:
    """Wraps a database and records each find's collection, filter, sort."""

    def __init__(self, db):
        self.db = db
        self.finds = []

    def __getattr__(self, name):
        return RecordingCollection(self, name, getattr(self.db, name))

    def __getitem__(self, name):
        return getattr(self, name)


class RecordingCollection:
    def __init__(self, owner, name, collection):
        self.owner, self.name, self.collection = owner, name, collection

    def __getattr__(self, attr):
        return getattr(self.collection, attr)

    def find(self, query, *args, **kwargs):
        call = {"collection": self.name, "filter": query, "sort": []}
        self.owner.finds.append(call)
        return RecordingCursor(call, self.collection.find(query, *args,
                                                          **kwargs))

    def find_one(self, query, *args, **kwargs):
        self.owner.finds.append({"collection": self.name, "filter": query,
                                 "sort": []})
        return self.collection.find_one(query, *args, **kwargs)


class RecordingCursor:
    def __init__(self, call, cursor):
        self.call, self.cursor = call, cursor

    def sort(self, key, direction):
        self.call["sort"].append((key, direction))
        self.cursor = self.cursor.sort(key, direction)
        return self

    def limit(self, n):
        self.cursor = self.cursor.limit(n)
        return self

    def __iter__(self):
        return iter(self.cursor)


def served_by_an_index(call):
    """Return whether an index has the equality fields, then the sort."""
    if set(call["filter"]) <= {"_id"} and not call["sort"]:
        return True

    equality = {k for k, v in call["filter"].items()
                if not isinstance(v, dict) or "$in" in v}
    ranges = [k for k in call["filter"] if k not in equality]
    for keys, _ in store.INDEXES.get(call["collection"], []):
        fields = [k for k, _ in keys]
        head, tail = fields[:len(equality)], fields[len(equality):]
        sort = [k for k, _ in call["sort"]]
        if (set(head) == equality and tail[:len(sort)] == sort
                and set(ranges) <= set(sort)):
            return True
    return False


def test_every_hot_query_matches_an_index(mock_db):
    db = RecordingDatabase(mock_db)
    alice = user(mock_db, "alice")

    store.get_user(db, "alice")
    store.get_user_by_id(db, alice["_id"])
    store.followed_usernames(db, {**alice, "follows": [alice["_id"]]}, 5)
    store.public_timeline(db, 30)
    store.public_timeline(db, 30, before=10)
    store.user_timeline(db, alice, 30)
    store.user_timeline(db, alice, 30, before=10)
    store.home_timeline(db, alice, 30)
    store.home_timeline(db, alice, 30, before=10)
    store.get_latest(db)

    assert len(db.finds) == 10
    for call in db.finds:
        assert served_by_an_index(call), call
