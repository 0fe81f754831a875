"""Shared fixtures: databases, the apps built over them, and clients."""

import base64
import uuid

import mongomock
import pytest
import webtest

import store
from app import create_app
from config import Config

SIMULATOR_AUTH = "Basic " + base64.b64encode(b"simulator:super_safe!").decode()


@pytest.fixture
def mock_db():
    """Return an empty mongomock database with the indexes in place."""
    db = mongomock.MongoClient().minitwit
    store.ensure_indexes(db)
    return db


@pytest.fixture(params=["mongomock", "ferretdb"])
def db(request):
    """Return an empty database with indexes, on mongomock and FerretDB."""
    if request.param == "mongomock":
        yield request.getfixturevalue("mock_db")
        return

    client = request.getfixturevalue("ferretdb_client")
    name = f"test_{uuid.uuid4().hex[:12]}"
    db = client[name]
    store.ensure_indexes(db)
    yield db
    client.drop_database(name)


@pytest.fixture(scope="session")
def ferretdb_server(tmp_path_factory):
    """Start one real local FerretDB server for the whole test run."""
    from localdb import LocalServer

    server = LocalServer(tmp_path_factory.mktemp("ferretdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ferretdb_client(ferretdb_server):
    """Return a MongoClient connected to the real local server."""
    import pymongo

    client = pymongo.MongoClient(ferretdb_server.uri,
                                 serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture(scope="module")
def stack(request, tmp_path_factory):
    """Start FerretDB and gunicorn as `make run` does, for one test module."""
    from serve import Stack

    data_dir = tmp_path_factory.mktemp(request.module.__name__)
    with Stack(data_dir, app_log=data_dir / "app.log") as running:
        yield running


def make_app(db):
    """Return the root app over db with a fixed test configuration."""
    return create_app(db, Config(secret_key="test-secret"))


@pytest.fixture
def web(mock_db):
    """Return a browser-like client of the whole app on mongomock."""
    return webtest.TestApp(make_app(mock_db))


@pytest.fixture
def api(db):
    """Return a client of the simulator API, with its credentials."""
    return ApiClient(webtest.TestApp(make_app(db)))


class ApiClient:
    """Sends requests the way the simulator does."""

    def __init__(self, app):
        self.app = app

    def request(self, method, path, body=None, auth=SIMULATOR_AUTH,
                status="*", **params):
        """Send a request to /api<path> and return the answer."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        query = "&".join(f"{k}={v}" for k, v in params.items())
        url = f"/api{path}" + (f"?{query}" if query else "")
        return self.app.request(url, method=method, headers=headers,
                                body=_encode(body), status=status,
                                expect_errors=True)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.request("POST", path, body, **kwargs)

    def register(self, username, email=None, pwd="secret", **kwargs):
        email = email or f"{username.replace(' ', '.')}@example.com"
        return self.post("/register", {"username": username,
                                       "email": email, "pwd": pwd},
                         **kwargs)


def _encode(body):
    import json

    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body).encode()
