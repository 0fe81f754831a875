"""Browser sessions: signed cookie state, sign-ins kept in the database.

The cookie carries a small JSON object (the CSRF token, pending flash
messages and, when signed in, a random session token), signed with HMAC so
it cannot be forged or altered. Nothing from the client is unpickled. The
database holds only a hash of each session token, so signing out ends the
session for good, even if someone kept a copy of the cookie.
"""

import base64
import datetime
import functools
import hashlib
import hmac
import json
import secrets

from bottle import HTTPError, HTTPResponse, request, response

import store

COOKIE = "session"
LIFETIME = datetime.timedelta(days=30)
STATE_KEY = "minitwit.session"
USER_KEY = "minitwit.user"


class Signer:
    """Signs and checks small JSON objects with a secret key."""

    def __init__(self, secret):
        self.key = hashlib.sha256(b"session:" + secret.encode()).digest()

    def dumps(self, data):
        """Return data as signed cookie-safe text."""
        payload = _b64encode(json.dumps(data, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def loads(self, text):
        """Return the data in signed text, or None if it was tampered with."""
        payload, _, mac = (text or "").partition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(_b64decode(payload))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _mac(self, payload):
        digest = hmac.new(self.key, payload.encode(), hashlib.sha256)
        return _b64encode(digest.digest())


class Sessions:
    """Per-request session state for the web app, installed as a plugin."""

    name = "sessions"
    api = 2

    def __init__(self, db, secret, secure=False):
        self.db = db
        self.signer = Signer(secret)
        self.secure = secure

    def apply(self, callback, route):
        """Wrap a route so that it loads and saves the session state."""

        @functools.wraps(callback)
        def wrapper(*args, **kwargs):
            cookie = request.get_cookie(COOKIE)
            state = self.signer.loads(cookie) or _fresh_state()
            request.environ[STATE_KEY] = state
            try:
                result = callback(*args, **kwargs)
            except HTTPResponse as answer:
                # NOTE: a refused request keeps the browser's cookie: a
                # cross-site post arrives without it, and answering with a
                # fresh one would sign the person out.
                if answer.status_code < 400:
                    self._save(state, cookie, answer)
                raise
            self._save(state, cookie, response)
            return result

        return wrapper

    def _save(self, state, cookie, target):
        """Set the cookie on the answer if the state changed."""
        text = self.signer.dumps(state)
        if text == cookie:
            return
        target.set_cookie(COOKIE, text, path="/", httponly=True,
                          samesite="lax", secure=self.secure,
                          max_age=int(LIFETIME.total_seconds()))

    def current_user(self):
        """Return the signed-in user, or None."""
        if USER_KEY not in request.environ:
            request.environ[USER_KEY] = self._load_user()
        return request.environ[USER_KEY]

    def _load_user(self):
        sid = _state().get("sid")
        if not sid:
            return None

        user_id = store.session_user_id(self.db, _token_hash(sid), _now())
        if user_id is None:
            _state()["sid"] = None
            return None
        return store.get_user_by_id(self.db, user_id)

    def sign_in(self, user):
        """Start a new session for user, with a new token and CSRF token."""
        sid = secrets.token_urlsafe(32)
        store.create_session(self.db, _token_hash(sid), user["_id"],
                             _now() + LIFETIME)
        state = _state()
        state["sid"] = sid
        state["csrf"] = secrets.token_urlsafe(32)
        request.environ[USER_KEY] = user

    def sign_out(self):
        """End the current session."""
        state = _state()
        if state.get("sid"):
            store.delete_session(self.db, _token_hash(state["sid"]))
        state["sid"] = None
        state["csrf"] = secrets.token_urlsafe(32)
        request.environ[USER_KEY] = None


def flash(message):
    """Keep a message to show on the next page rendered."""
    _state().setdefault("flash", []).append(message)


def pop_flashes():
    """Return and forget the pending flash messages."""
    return _state().pop("flash", None) or []


def csrf_token():
    """Return the token that forms must send back."""
    return _state()["csrf"]


def check_csrf():
    """Refuse a form post whose CSRF token is missing or wrong."""
    sent = request.forms.get("csrf_token") or ""
    if not hmac.compare_digest(sent.encode(), csrf_token().encode()):
        raise HTTPError(403, "The form has expired or came from elsewhere. "
                             "Reload the page and try again.")


def _state():
    return request.environ[STATE_KEY]


def _fresh_state():
    return {"sid": None, "csrf": secrets.token_urlsafe(32)}


def _token_hash(sid):
    return hashlib.sha256(sid.encode()).hexdigest()


def _now():
    return datetime.datetime.now(datetime.UTC)


def _b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
