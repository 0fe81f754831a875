"""The simulator API: the HTTP contract that the course's simulator drives.

Every answer is JSON or empty, errors included; see docs/api.md for what
each odd input answers.
"""

import functools
import json
import logging
import re
from pathlib import Path

import bottle
import pymongo
from bottle import HTTPResponse, request
from pymongo.errors import PyMongoError

import store
from passwords import hash_password

log = logging.getLogger(__name__)

AUTHORIZATION = "Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh"
MAX_BODY = 64 * 1024
MAX_NO = 10_000
DEFAULT_NO = 100
OPENAPI = Path(__file__).resolve().parent / "openapi.json"

# NOTE: the simulator gives up after 0.3 s. The first database call of a
# request must answer within REACH_BUDGET, so a missing or hung database
# gives a quick 503. Once it has answered, the rest of the request gets
# WORK_BUDGET: a slow reply costs one error, a write abandoned halfway
# would cost every later action that builds on it. A frozen database
# showed 0.25 s leaving too little of the 0.3 s for the rest of the way.
REACH_BUDGET = 0.2
WORK_BUDGET = 2.0
UNAVAILABLE = "The database is unavailable, try again shortly"
INT64 = range(-2**63, 2**63)
# NOTE: int() alone would also take "1_000", " 7 " and non-ASCII digits.
INTEGER = re.compile(r"-?[0-9]{1,19}")


def build_api(db):
    """Return the simulator API as a Bottle app over the database db."""
    api = bottle.Bottle()
    api.install(functools.partial(_guard, db))
    identities = IdentityCache(db)
    openapi = OPENAPI.read_bytes()

    @api.get("/openapi.json")
    def get_openapi():
        """Answer the OpenAPI description of this API."""
        return HTTPResponse(openapi, 200,
                            {"Content-Type": "application/json"})

    @api.get("/latest")
    def get_latest():
        """Answer the last action id that the simulator sent."""
        return _json({"latest": store.get_latest(db)})

    @api.post("/register")
    def register():
        """Register a user."""
        body = _json_object()
        username = _field(body, "username", "You have to enter a username")
        email = _field(body, "email",
                       "You have to enter a valid email address")
        if "@" not in email:
            raise _error(400, "You have to enter a valid email address")
        password = _field(body, "pwd", "You have to enter a password")

        try:
            store.create_user(db, username, email, hash_password(password))
        except store.UsernameTaken:
            raise _error(400, "The username is already taken") from None
        return _no_content()

    @api.get("/msgs")
    @_simulator_only
    def get_messages():
        """List the newest messages of everyone."""
        return _message_list(store.public_timeline(db, _no()))

    @api.get("/msgs/<username:path>")
    @_simulator_only
    def get_user_messages(username):
        """List the newest messages of one user."""
        user = identities.get(username)
        return _message_list(store.user_timeline(db, user, _no()))

    @api.post("/msgs/<username:path>")
    @_simulator_only
    def post_message(username):
        """Post a message as a user."""
        user = identities.get(username)
        content = _field(_json_object(), "content",
                         "You have to enter a message")
        store.add_message(db, user, content)
        return _no_content()

    @api.get("/fllws/<username:path>")
    @_simulator_only
    def get_follows(username):
        """List the users that a user follows, in the order followed."""
        user = _user(db, username)
        return _json({"follows": store.followed_usernames(db, user, _no())})

    @api.post("/fllws/<username:path>")
    @_simulator_only
    def post_follow(username):
        """Follow or unfollow a user."""
        user = identities.get(username)
        body = _json_object()
        if ("follow" in body) == ("unfollow" in body):
            raise _error(400, "Give exactly one of follow and unfollow")

        action = "follow" if "follow" in body else "unfollow"
        other = identities.get(
            _field(body, action, f"{action} names no user"))
        getattr(store, action)(db, user["_id"], other["_id"])
        return _no_content()

    return api


def error_body(status, message):
    """Return the JSON text of an error answer."""
    return json.dumps({"status": status, "error_msg": message})


def record_latest(db):
    """Store the request's `latest` parameter; return whether there was one.

    A value that is not an integer, or too large to store, is ignored.
    """
    value = request.query.get("latest")
    if value is None or not INTEGER.fullmatch(value):
        return False

    latest = int(value)
    if latest not in INT64:
        log.warning("ignored latest=%s: too large to store", value)
        return False
    store.set_latest(db, latest)
    return True


def path_error():
    """Return why the raw request path is unusable, or None if it is fine."""
    raw = request.environ.get("bottle.raw_path", "")
    try:
        raw.encode("latin1").decode("utf8")
    except UnicodeError:
        return "The path is not valid UTF-8"
    return None


def _guard(db, callback):
    """Wrap a route: record `latest`, bound database time, map failures."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        _check_raw_path()
        try:
            with pymongo.timeout(REACH_BUDGET):
                if not record_latest(db):
                    store.ping(db)
            with pymongo.timeout(WORK_BUDGET):
                return callback(*args, **kwargs)
        except PyMongoError as exc:
            log.error("database unavailable for %s %s: %s",
                      request.method, request.path, exc)
            raise _error(503, UNAVAILABLE) from None

    return wrapper


def _check_raw_path():
    """Refuse a path whose percent-encoding is not UTF-8."""
    problem = path_error()
    if problem:
        raise _error(400, problem)


def _simulator_only(callback):
    """Refuse a request that lacks the simulator's credentials."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        if request.headers.get("Authorization") != AUTHORIZATION:
            raise _error(403, "You are not authorized to use this resource!")
        return callback(*args, **kwargs)

    return wrapper


def _error(status, message):
    """Return an HTTP error answer with the contract's JSON body."""
    return HTTPResponse(error_body(status, message), status,
                        {"Content-Type": "application/json"})


def _json(value):
    """Return a 200 answer with value as JSON."""
    return HTTPResponse(json.dumps(value), 200,
                        {"Content-Type": "application/json"})


def _no_content():
    """Return the empty answer to a successful write."""
    return HTTPResponse(status=204)


def _json_object():
    """Return the request body as a JSON object, or raise a 400."""
    body = _read_body()
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise _error(400, "The body is not valid JSON") from None
    if not isinstance(value, dict):
        raise _error(400, "The body must be a JSON object")
    return value


def _read_body():
    """Return the request body, at most MAX_BODY bytes, or raise."""
    too_large = _error(413, f"The body is larger than {MAX_BODY} bytes")
    if request.content_length > MAX_BODY:
        raise too_large

    # NOTE: Bottle would parse a chunked body itself, but gunicorn has
    # already decoded it; read the stream as the server hands it over.
    chunked = "chunked" in request.get_header("Transfer-Encoding", "")
    limit = MAX_BODY + 1 if chunked else max(request.content_length, 0)
    try:
        body = request.environ["wsgi.input"].read(limit)
    except Exception as exc:  # noqa: BLE001 - each server raises its own
        log.warning("unreadable body in %s %s: %s", request.method,
                    request.path, exc)
        raise _error(400, "The body could not be read") from None

    if len(body) > MAX_BODY:
        raise too_large
    return body


def _field(body, name, message):
    """Return a non-empty string field of the body, or raise a 400."""
    value = body.get(name)
    if value is None or value == "":
        raise _error(400, message)
    if not isinstance(value, str):
        raise _error(400, f"{name} must be a string")
    if not _is_unicode(value):
        raise _error(400, f"{name} must be valid Unicode text")
    return value


def _is_unicode(text):
    """Tell whether text can be stored: JSON may carry lone surrogates."""
    try:
        text.encode("utf8")
    except UnicodeEncodeError:
        return False
    return True


def _no():
    """Return the `no` query parameter: how many entries to list."""
    value = request.query.get("no")
    if value is None:
        return DEFAULT_NO
    if not value.isascii() or not value.isdigit():
        raise _error(400, "no must be a non-negative integer")

    # NOTE: int() refuses strings of over 4300 digits; any such is huge.
    digits = value.lstrip("0") or "0"
    if len(digits) > len(str(MAX_NO)):
        return MAX_NO
    return min(int(digits), MAX_NO)


class IdentityCache:
    """Remembers the unchanging part of users: id, name and avatar hash.

    Most API writes need only that, and names never change, so this saves
    a database read on each. Unknown names are not remembered: they may
    be registered a moment later.
    """

    FIELDS = ("_id", "username", "email_hash")
    SIZE = 100_000

    def __init__(self, db):
        self.db = db
        self.known = {}

    def get(self, username):
        """Return the named user's identity, or raise a 404."""
        identity = self.known.get(username)
        if identity is None:
            user = _user(self.db, username)
            identity = {field: user[field] for field in self.FIELDS}
            if len(self.known) >= self.SIZE:
                self.known.clear()
            self.known[username] = identity
        return identity


def _user(db, username):
    """Return the named user, or raise a 404."""
    user = store.get_user(db, username)
    if user is None:
        raise _error(404, f"Unknown user: {username}")
    return user


def _message_list(messages):
    """Return messages in the shape the simulator reads."""
    return _json([{"content": m["text"], "pub_date": m["pub_date"],
                   "user": m["username"]} for m in messages])
