"""The local FerretDB server: start, stop, restart and what it enforces."""

import multiprocessing
import socket

import pymongo
import pytest
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from localdb import LocalDBError, LocalServer


@pytest.fixture
def server(tmp_path):
    """Return a started server keeping its data in a fresh directory."""
    with LocalServer(tmp_path / "db") as server:
        yield server


def client_of(server, **options):
    """Return a client that gives up quickly if the server is gone."""
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=2000,
                               **options)


def test_write_survives_stop_and_start(server):
    with client_of(server) as client:
        client.minitwit.notes.insert_one({"_id": 1, "text": "kept"})

    port = server.port
    server.stop()
    assert not server.running
    server.start()

    assert server.port == port
    with client_of(server) as client:
        assert client.minitwit.notes.find_one({"_id": 1})["text"] == "kept"


def test_acknowledged_write_survives_kill(server):
    with client_of(server) as client:
        client.minitwit.notes.insert_one({"_id": 2, "text": "acked"})

    server.kill()
    server.start()

    with client_of(server) as client:
        assert client.minitwit.notes.find_one({"_id": 2})["text"] == "acked"


def test_unique_index_rejects_duplicate(server):
    with client_of(server) as client:
        users = client.minitwit.users
        users.create_index("username", unique=True)
        users.insert_one({"username": "alice"})

        with pytest.raises(DuplicateKeyError):
            users.insert_one({"username": "alice"})
        assert users.count_documents({"username": "alice"}) == 1


def test_start_fails_with_log_tail_when_port_is_taken(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        server = LocalServer(tmp_path / "db", port=port)

        with pytest.raises(LocalDBError, match="address already in use"):
            server.start(timeout=10)
        assert not server.running


# Concurrent writers are separate processes, each with its own client, as
# gunicorn workers are; spawned, since a forked child must not inherit a
# parent's MongoClient.
SPAWN = multiprocessing.get_context("spawn")
RACE_TIMEOUT = 120


def in_processes(uri, jobs):
    """Run each job (work, *args) as work(uri, start, *args) in a process.

    Return what each returned, in the order they finished.

    Every process connects first and then waits at a common start line,
    so that their writes overlap as much as they can.
    """
    start = SPAWN.Barrier(len(jobs))
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=_report, args=(results, uri, start, *job))
        for job in jobs]
    for process in processes:
        process.start()

    try:
        outcomes = [results.get(timeout=RACE_TIMEOUT) for _ in jobs]
    finally:
        for process in processes:
            process.join(RACE_TIMEOUT)
            process.kill()

    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def _report(results, uri, start, work, *args):
    """Put what work returns, or the exception it raised, on results."""
    try:
        results.put(work(uri, start, *args))
    except Exception as error:
        results.put(error)


def race_client(uri, start):
    """Return a connected client once every racing process has one."""
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000)
    client.admin.command("ping")
    start.wait(RACE_TIMEOUT)
    return client


def increment(uri, start, calls):
    """Increment the shared counter calls times; return the new values."""
    with race_client(uri, start) as client:
        counters = client.race.counters
        return [counters.find_one_and_update(
                    {"_id": "messages"}, {"$inc": {"value": 1}},
                    upsert=True, return_document=ReturnDocument.AFTER)
                ["value"] for _ in range(calls)]


def add_to_set(uri, start, values):
    """Add each value to the shared user's follows, one update each."""
    with race_client(uri, start) as client:
        for value in values:
            client.race.users.update_one(
                {"_id": "alice"}, {"$addToSet": {"follows": value}})


def pull(uri, start, values):
    """Pull each value from the shared user's follows, one update each."""
    with race_client(uri, start) as client:
        for value in values:
            client.race.users.update_one(
                {"_id": "alice"}, {"$pull": {"follows": value}})


def follows_of_alice(server):
    """Return the follows list of the shared user."""
    with client_of(server) as client:
        return client.race.users.find_one({"_id": "alice"})["follows"]


def test_concurrent_counter_increments_lose_no_update(server):
    processes, calls = 4, 200

    results = in_processes(server.uri, [(increment, calls)] * processes)

    values = sorted(value for result in results for value in result)
    assert values == list(range(1, processes * calls + 1))
    with client_of(server) as client:
        counter = client.race.counters.find_one({"_id": "messages"})
    assert counter["value"] == processes * calls


def test_concurrent_add_to_set_loses_no_value(server):
    with client_of(server) as client:
        client.race.users.insert_one({"_id": "alice", "follows": []})
    added = [list(range(p * 1000, p * 1000 + 100)) for p in range(5)]

    in_processes(server.uri, [(add_to_set, values) for values in added])

    follows = follows_of_alice(server)
    assert sorted(follows) == sorted(v for values in added for v in values)


def test_pull_racing_add_to_set_leaves_exactly_the_added(server):
    old = list(range(200))
    with client_of(server) as client:
        client.race.users.insert_one({"_id": "alice", "follows": old})
    added = [list(range(1000, 1100)), list(range(2000, 2100))]
    pulled = [old[:100], old[100:]]

    in_processes(server.uri, [(add_to_set, values) for values in added]
                 + [(pull, values) for values in pulled])

    follows = follows_of_alice(server)
    assert sorted(follows) == sorted(added[0] + added[1])


def test_unacknowledged_write_keeps_connection_in_step(server):
    # One connection, so the read follows the write on it; a timeout, so a
    # proxy waiting for a reply that never comes fails rather than hangs.
    with client_of(server, maxPoolSize=1, socketTimeoutMS=10000) as client:
        notes = client.minitwit.notes
        notes.with_options(write_concern=pymongo.WriteConcern(w=0)) \
            .insert_one({"_id": 3, "text": "fire and forget"})

        assert notes.find_one({"_id": 3})["text"] == "fire and forget"
