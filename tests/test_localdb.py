"""The local FerretDB server: start, stop, restart and what it enforces."""

import socket

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError

from localdb import LocalDBError, LocalServer


@pytest.fixture
def server(tmp_path):
    """Return a started server keeping its data in a fresh directory."""
    with LocalServer(tmp_path / "db") as server:
        yield server


def client_of(server):
    """Return a client that gives up quickly if the server is gone."""
    return pymongo.MongoClient(server.uri, serverSelectionTimeoutMS=2000)


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
