"""The local stack: database and gunicorn started, restarted and stopped."""

import json
import os
import textwrap
import urllib.error
import urllib.request

import pytest

from serve import Stack, settings_from_env

# A stand-in app, so these tests exercise the machinery whatever the real
# app does: it counts its hits in the database it is given.
COUNTER_APP = textwrap.dedent('''
    import json, os
    import pymongo

    client = pymongo.MongoClient(os.environ["MINITWIT_MONGO_URI"],
                                 serverSelectionTimeoutMS=500)

    def app(environ, start_response):
        try:
            hits = client.test.hits
            if environ["PATH_INFO"] == "/hit":
                hits.insert_one({})
            body, status = {"hits": hits.count_documents({})}, "200 OK"
        except pymongo.errors.PyMongoError:
            body, status = {"status": "unavailable"}, "503 Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]
''')


@pytest.fixture
def stack(tmp_path):
    """Return a running stack serving the counter app from tmp_path."""
    (tmp_path / "counter_app.py").write_text(COUNTER_APP)
    with Stack(tmp_path / "data", app="counter_app:app",
               app_log=tmp_path / "app.log",
               env={"PYTHONPATH": str(tmp_path),
                    "MINITWIT_WORKERS": "1"}) as stack:
        yield stack


def get(url):
    """Return the status and JSON body of a GET, bypassing any proxy."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_app_restarts_on_same_port_and_keeps_data(stack):
    assert get(stack.base_url + "/hit") == (200, {"hits": 1})

    stack.stop_app()
    with pytest.raises(urllib.error.URLError):
        get(stack.base_url + "/health")
    stack.start_app()

    assert get(stack.base_url + "/hit") == (200, {"hits": 2})


def test_app_answers_503_while_database_is_down(stack):
    get(stack.base_url + "/hit")

    stack.db_server.kill()
    assert get(stack.base_url + "/health")[0] == 503
    stack.db_server.start()

    assert get(stack.base_url + "/health") == (200, {"hits": 1})


def test_stop_leaves_no_server_behind(stack):
    app_process = stack.app
    db_process = stack.db_server.process

    stack.stop()

    assert app_process.poll() is not None
    assert db_process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(app_process.pid, 0)  # no gunicorn worker is left either
    with pytest.raises(urllib.error.URLError):
        get(stack.base_url + "/health")


def test_settings_come_from_env(tmp_path):
    settings = settings_from_env({"PORT": "9000",
                                  "MINITWIT_DATA_DIR": str(tmp_path),
                                  "MINITWIT_MONGO_URI": "mongodb://db/"})

    assert settings == {"data_dir": tmp_path, "port": 9000,
                        "host": "127.0.0.1", "mongo_uri": "mongodb://db/"}
