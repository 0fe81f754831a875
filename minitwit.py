"""The MiniTwit web app: timelines, following, posting and accounts."""

import datetime
import functools
import logging
import re
from pathlib import Path
from urllib.parse import quote

import bottle
import pymongo
from bottle import HTTPError, HTTPResponse, redirect, request, template
from pymongo.errors import PyMongoError

import store
import websession
from avatars import identicon_svg
from passwords import check_password, hash_password, needs_upgrade
from websession import check_csrf, csrf_token, flash, pop_flashes

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
VIEWS = HERE / "views"
STATIC = HERE / "static"
PER_PAGE = 30
DB_BUDGET = 5.0
UNAVAILABLE = ("MiniTwit cannot reach its database just now. "
               "Please try again in a moment.")

# Names that a route owns: a user called so has their page at /users/<name>.
RESERVED = {"public", "login", "logout", "register", "add_message",
            "static", "avatar", "users", "health", "api"}
FOLLOW_FLASH = {"follow": 'You are now following "{}"',
                "unfollow": 'You are no longer following "{}"'}
EMAIL_HASH = re.compile(r"[0-9a-f]{32}")

bottle.TEMPLATE_PATH[:] = [str(VIEWS)]


def build_web(db, config):
    """Return the web app as a Bottle app over the database db."""
    web = bottle.Bottle()
    sessions = websession.Sessions(db, config.secret_key,
                                   config.secure_cookies)
    web.install(_database_guard)
    web.install(sessions)

    def page(name, **values):
        """Render a page with what every page shows."""
        user = sessions.current_user()
        return template(name, user=user, flashes=pop_flashes(),
                        csrf_token=csrf_token(), user_url=user_url,
                        avatar_url=avatar_url, format_date=format_date,
                        **values)

    def signed_in_user():
        """Return the signed-in user, or send the browser to sign in."""
        user = sessions.current_user()
        if user is None:
            flash("You have to sign in first")
            redirect("/login")
        return user

    def timeline(title, messages, endpoint, **values):
        """Render a page of messages with a link to older ones."""
        older = None
        if len(messages) > PER_PAGE:
            messages = messages[:PER_PAGE]
            older = f"{endpoint}?before={messages[-1]['seq']}"
        return page("timeline.tpl", title=title, messages=messages,
                    older=older, **values)

    @web.get("/")
    def home():
        """Show my messages and those of the users I follow."""
        user = sessions.current_user()
        if user is None:
            redirect("/public")
        messages = store.home_timeline(db, user, PER_PAGE + 1, _before())
        return timeline("My timeline", messages, "/", kind="home")

    @web.get("/public")
    def public():
        """Show everyone's newest messages."""
        messages = store.public_timeline(db, PER_PAGE + 1, _before())
        return timeline("Public timeline", messages, "/public",
                        kind="public")

    @web.get("/users/<username>")
    @web.get("/<username>")
    def user_page(username):
        """Show one user's messages."""
        user = sessions.current_user()
        profile = _profile(db, username)
        followed = bool(user and store.is_following(user, profile))
        action = "unfollow" if followed else "follow"
        messages = store.user_timeline(db, profile, PER_PAGE + 1, _before())
        return timeline(
            f"{profile['username']}'s timeline", messages,
            user_url(profile["username"]), kind="user", profile=profile,
            followed=followed,
            follow_action=f"/{quote(profile['username'], safe='')}/{action}")

    @web.post("/<username>/<action:re:follow|unfollow>")
    def change_follow(username, action):
        """Follow or stop following a user."""
        check_csrf()
        user = signed_in_user()
        profile = _profile(db, username)
        getattr(store, action)(db, user["_id"], profile["_id"])
        flash(FOLLOW_FLASH[action].format(profile["username"]))
        redirect(user_url(profile["username"]))

    @web.post("/add_message")
    def add_message():
        """Post a message as the signed-in user."""
        check_csrf()
        user = signed_in_user()
        text = request.forms.getunicode("text", "").strip()
        if text:
            store.add_message(db, user, text)
            flash("Your message was recorded")
        redirect("/")

    @web.get("/login")
    def login_form():
        """Show the sign-in form."""
        if sessions.current_user():
            redirect("/")
        return page("login.tpl", error=None, username="")

    @web.post("/login")
    def login():
        """Sign a user in."""
        check_csrf()
        username = request.forms.getunicode("username", "")
        password = request.forms.getunicode("password", "")
        user = store.get_user(db, username)

        if user is None:
            error = "Invalid username"
        elif not check_password(user["pw_hash"], password):
            error = "Invalid password"
        else:
            if needs_upgrade(user["pw_hash"]):
                store.set_password_hash(db, user["_id"],
                                        hash_password(password))
            sessions.sign_in(user)
            flash("You were logged in")
            redirect("/")
        return page("login.tpl", error=error, username=username)

    @web.get("/register")
    def register_form():
        """Show the sign-up form."""
        if sessions.current_user():
            redirect("/")
        return page("register.tpl", error=None, username="", email="")

    @web.post("/register")
    def register():
        """Create an account."""
        check_csrf()
        form = {name: request.forms.getunicode(name, "")
                for name in ("username", "email", "password", "password2")}
        error = _registration_error(**form)

        if error is None:
            try:
                store.create_user(db, form["username"], form["email"],
                                  hash_password(form["password"]))
            except store.UsernameTaken:
                error = "The username is already taken"
            else:
                flash("You were successfully registered and can login now")
                redirect("/login")
        return page("register.tpl", error=error, username=form["username"],
                    email=form["email"])

    @web.post("/logout")
    def logout():
        """Sign the user out."""
        check_csrf()
        sessions.sign_out()
        flash("You were logged out")
        redirect("/public")

    @web.get("/avatar/<digest>.svg")
    def avatar(digest):
        """Serve the identicon for an email hash."""
        if not EMAIL_HASH.fullmatch(digest):
            raise HTTPError(404, "No such avatar.")
        return HTTPResponse(identicon_svg(digest), 200, {
            "Content-Type": "image/svg+xml",
            "Cache-Control": "public, max-age=86400"})

    @web.get("/static/<path:path>")
    def static(path):
        """Serve the stylesheet and other static files."""
        return bottle.static_file(path, root=str(STATIC))

    return web


def _registration_error(username, email, password, password2):
    """Return what is wrong with a sign-up form, or None."""
    if not username:
        return "You have to enter a username"
    if not email or "@" not in email:
        return "You have to enter a valid email address"
    if not password:
        return "You have to enter a password"
    if password != password2:
        return "The two passwords do not match"
    if username in RESERVED or "/" in username:
        return "That username is reserved, please choose another"
    return None


def _profile(db, username):
    """Return the named user, or answer 404."""
    profile = store.get_user(db, username)
    if profile is None:
        raise HTTPError(404, f"There is no user called {username}.")
    return profile


def _before():
    """Return the sort key that the page of older messages starts below."""
    value = request.query.get("before", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _database_guard(callback):
    """Bound a request's database time and answer 503 when it is down."""

    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            with pymongo.timeout(DB_BUDGET):
                return callback(*args, **kwargs)
        except PyMongoError as exc:
            log.error("database unavailable for %s %s: %s",
                      request.method, request.path, exc)
            raise HTTPError(503, UNAVAILABLE) from None

    return wrapper


def user_url(username):
    """Return the address of a user's page."""
    name = quote(username, safe="")
    return f"/users/{name}" if username in RESERVED else f"/{name}"


def avatar_url(email_hash):
    """Return the address of an avatar picture."""
    return f"/avatar/{email_hash}.svg"


def format_date(timestamp):
    """Return a unix time as YYYY-MM-DD @ HH:MM, in UTC."""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.strftime("%Y-%m-%d @ %H:%M")


def error_page(error):
    """Render an error answer in the site's layout."""
    # NOTE: error handlers run outside the session plugin; show whoever
    # the failed route had already found signed in, else nobody.
    state = request.environ.get(websession.STATE_KEY) or {}
    return template("error.tpl", status=error.status_code,
                    message=_error_message(error),
                    user=request.environ.get(websession.USER_KEY),
                    flashes=[], csrf_token=state.get("csrf", ""),
                    user_url=user_url)


def _error_message(error):
    """Return what to tell a person about an error, never a traceback."""
    if error.status_code >= 500 and error.status_code != 503:
        return "Something went wrong on our side. Please try again."
    if isinstance(error.body, str) and error.body:
        return error.body
    return {404: "There is nothing at this address.",
            405: "That is not something this page can do."}.get(
        error.status_code, "That request could not be handled.")
