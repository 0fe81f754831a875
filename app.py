"""The application factory: the web app at /, the simulator API at /api/."""

import json
import logging
import threading
import time

import bottle
import pymongo
from bottle import HTTPResponse, request
from pymongo.errors import ConnectionFailure, PyMongoError

import config as configuration
import simapi
import store
from minitwit import build_web, error_page

log = logging.getLogger(__name__)

API_PREFIX = "/api/"
HEALTH_BUDGET = 1.0
INDEX_BUDGET = 5.0
INDEX_RETRY_PAUSE = 1.0

SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'self'; img-src 'self'; style-src 'self'; "
     "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
     "base-uri 'none'; object-src 'none'"),
]


def create_app(db=None, config=None):
    """Return the root WSGI app; connect to MongoDB unless db is given."""
    config = config or configuration.from_env()
    if db is None:
        db = connect(config)
        ensure_indexes_soon(db)

    root = build_web(db, config)
    api = simapi.build_api(db)
    root.mount(API_PREFIX, api)
    _add_health(root, db)
    _add_error_pages(root, db)
    return with_security_headers(root)


def connect(config):
    """Return the configured database through a new MongoClient."""
    # NOTE: short selection and connect timeouts so that a missing database
    # gives a quick 503 instead of a request stuck for the 30 s default.
    client = pymongo.MongoClient(config.mongo_uri,
                                 serverSelectionTimeoutMS=2000,
                                 connectTimeoutMS=1000,
                                 appname="minitwit")
    return client[config.db_name]


def ensure_indexes_soon(db):
    """Create the indexes now, or in the background once the database is up.

    A worker that raised here would not boot, and gunicorn stops altogether
    when a worker fails to boot: a database that is down while a worker
    starts or restarts would take the whole app down with it.
    """
    if _try_indexes(db):
        return

    log.warning("database unreachable at start; serving 503 until it "
                "answers, indexes will be created then")
    threading.Thread(target=_retry_indexes, args=(db,), daemon=True,
                     name="ensure-indexes").start()


def _try_indexes(db):
    """Create the indexes; return False if the database is unreachable."""
    try:
        with pymongo.timeout(INDEX_BUDGET):
            store.ensure_indexes(db)
    except PyMongoError as exc:
        if isinstance(exc, ConnectionFailure) or exc.timeout:
            return False
        raise
    return True


def _retry_indexes(db):
    """Try to create the indexes until the database answers."""
    while not _try_indexes(db):
        time.sleep(INDEX_RETRY_PAUSE)
    log.info("database reachable again; indexes ensured")


def _add_health(root, db):
    """Answer GET /health with whether the database answers."""

    @root.get("/health")
    def health():
        """Report whether the app can reach its database."""
        try:
            with pymongo.timeout(HEALTH_BUDGET):
                store.ping(db)
        except PyMongoError as exc:
            log.error("health check failed: %s", exc)
            return _json_answer(503, {"status": "unavailable"})
        return _json_answer(200, {"status": "ok"})


def _add_error_pages(root, db):
    """Answer errors as JSON under /api/ and as pages elsewhere."""

    def handle(error):
        if error.status_code >= 500 and error.traceback:
            log.error("%s %s failed:\n%s", request.method, request.path,
                      error.traceback)
        if request.path.startswith(API_PREFIX):
            return _api_error(db, error)
        return error_page(error)

    for status in (400, 401, 403, 404, 405, 413, 500, 503):
        root.error(status)(handle)


def _api_error(db, error):
    """Return an API error body; record `latest` as the contract asks."""
    bottle.response.content_type = "application/json"
    try:
        with pymongo.timeout(simapi.REACH_BUDGET):
            simapi.record_latest(db)
    except PyMongoError:
        pass  # NOTE: the error at hand matters more than the counter.

    # NOTE: Bottle drops undecodable bytes from the path before routing,
    # so a bad path would otherwise show up as a baffling 404.
    problem = simapi.path_error()
    if problem:
        bottle.response.status = 400
        return simapi.error_body(400, problem)

    message = {404: "There is no such resource",
               405: "That method is not allowed here"}.get(
        error.status_code, "The request failed")
    return simapi.error_body(error.status_code, message)


def _json_answer(status, value):
    return HTTPResponse(json.dumps(value), status,
                        {"Content-Type": "application/json"})


def with_security_headers(app):
    """Wrap a WSGI app so that every answer carries the security headers."""

    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            names = {name.lower() for name, _ in headers}
            headers += [h for h in SECURITY_HEADERS
                        if h[0].lower() not in names]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    wrapped.bottle = app
    return wrapped
