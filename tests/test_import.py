"""Importing a database of the original SQLite MiniTwit."""

import sqlite3
from pathlib import Path

import pytest
import webtest
from conftest import make_app

import store
from import_legacy import import_database
from passwords import check_password

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LEGACY = SHARED / "legacy-minitwit.sqlite"
SCENARIO = SHARED / "scenario.tsv"

SCHEMA = """
CREATE TABLE user (user_id integer primary key autoincrement,
                   username string not null, email string not null,
                   pw_hash string not null);
CREATE TABLE follower (who_id integer, whom_id integer);
CREATE TABLE message (message_id integer primary key autoincrement,
                      author_id integer not null, text string not null,
                      pub_date integer, flagged integer);
"""
PBKDF2 = "pbkdf2:sha256:1000$salt$" + "0" * 64


@pytest.fixture
def small(tmp_path):
    """Return a small original-MiniTwit database with known contents."""
    path = tmp_path / "minitwit.db"
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    con.executemany("INSERT INTO user VALUES (?, ?, ?, ?)", [
        (1, "ann", "ann@example.com", PBKDF2),
        (2, "ben", "ben@example.com", PBKDF2),
        (3, "cat", "cat@example.com", PBKDF2)])
    con.executemany("INSERT INTO follower VALUES (?, ?)",
                    [(1, 3), (1, 2), (2, 1)])
    con.executemany("INSERT INTO message VALUES (?, ?, ?, ?, ?)", [
        (1, 1, "first", 1000, 0), (2, 2, "second", 2000, 0),
        (3, 3, "spam", 3000, 1), (4, 1, "third", 3000, 0)])
    con.commit()
    con.close()
    return path


def test_import_keeps_users_follows_messages_and_dates(db, small):
    counts = import_database(db, small)
    assert counts == {"users": 3, "follows": 3, "messages": 4}

    ann = store.get_user(db, "ann")
    assert ann["pw_hash"] == PBKDF2
    assert store.followed_usernames(db, ann, 10) == ["cat", "ben"]
    assert [(m["username"], m["text"], m["pub_date"])
            for m in store.public_timeline(db, 10)] == [
        ("ann", "third", 3000), ("ben", "second", 2000),
        ("ann", "first", 1000)]


def test_flagged_messages_stay_hidden(db, small):
    import_database(db, small)
    cat = store.get_user(db, "cat")
    assert store.user_timeline(db, cat, 10) == []
    assert db.messages.count_documents({"flagged": True}) == 1


def test_importing_twice_adds_nothing_twice(db, small):
    import_database(db, small)
    again = import_database(db, small)

    assert again["messages"] == 0
    assert db.users.count_documents({}) == 3
    assert db.messages.count_documents({}) == 4
    ann = store.get_user(db, "ann")
    assert store.followed_usernames(db, ann, 10) == ["cat", "ben"]


def scenario_password(username):
    """Return the password a user registered with in the scenario."""
    for line in SCENARIO.read_text().splitlines():
        fields = line.split("\t")
        if fields[3] == "register" and fields[4] == username:
            return fields[-1]
    raise LookupError(username)


@pytest.mark.slow
def test_the_recorded_run_imports_and_roger_signs_in(db):
    counts = import_database(db, LEGACY)
    with sqlite3.connect(LEGACY) as con:
        users, = con.execute("SELECT count(*) FROM user").fetchone()
        follows, = con.execute("SELECT count(*) FROM follower").fetchone()
        messages, = con.execute("SELECT count(*) FROM message").fetchone()
    assert counts == {"users": users, "follows": follows,
                      "messages": messages}

    password = scenario_password("Roger Histand")
    roger = store.get_user(db, "Roger Histand")
    assert check_password(roger["pw_hash"], password)

    web = webtest.TestApp(make_app(db))
    form = web.get("/login").forms[0]
    form["username"] = "Roger Histand"
    form["password"] = password
    assert "You were logged in" in form.submit().follow().text
    upgraded = store.get_user(db, "Roger Histand")["pw_hash"]
    assert upgraded.startswith("$argon2id$")
