"""The web app's pages and flows, through a browser-like client."""

import re
from html import unescape

import pytest

import store
from passwords import hash_password


def register(web, username, password="secret", email=None, password2=None):
    form = web.get("/register").forms[0]
    form["username"] = username
    form["email"] = email if email is not None else f"{username}@example.com"
    form["password"] = password
    form["password2"] = password if password2 is None else password2
    return form.submit()


def login(web, username, password="secret"):
    form = web.get("/login").forms[0]
    form["username"] = username
    form["password"] = password
    return form.submit()


def signed_up(web, username, password="secret"):
    register(web, username, password)
    return login(web, username, password).follow()


def post(web, text):
    form = _message_form(web)
    form["text"] = text
    return form.submit().follow()


def _message_form(web):
    page = web.get("/")
    return next(f for f in page.forms.values()
                if f.action == "/add_message")


def button_form(page, action_suffix):
    return next(f for f in page.forms.values()
                if f.action.endswith(action_suffix))


def test_signed_out_home_redirects_to_public(web):
    res = web.get("/")
    assert res.status_int == 302
    assert res.headers["Location"].endswith("/public")


def test_public_timeline_shows_no_message_so_far(web):
    res = web.get("/public")
    assert "There's no message so far." in res.text
    assert "Public timeline" in res.text


def test_register_then_login_then_logout(web):
    res = register(web, "alice")
    assert res.status_int == 302
    res = res.follow()
    assert "You were successfully registered and can login now" in res.text

    res = login(web, "alice").follow()
    assert "You were logged in" in res.text
    assert "My timeline" in res.text

    res = button_form(res, "/logout").submit().follow()
    assert "You were logged out" in res.text
    assert web.get("/").status_int == 302


@pytest.mark.parametrize("fields, error", [
    ({"username": ""}, "You have to enter a username"),
    ({"email": "nope"}, "You have to enter a valid email address"),
    ({"password": ""}, "You have to enter a password"),
    ({"password2": "other"}, "The two passwords do not match"),
    ({"username": "public"},
     "That username is reserved, please choose another"),
])
def test_register_errors(web, fields, error):
    values = {"username": "bob", "email": "bob@example.com",
              "password": "pw", "password2": "pw", **fields}
    form = web.get("/register").forms[0]
    for name, value in values.items():
        form[name] = value
    res = form.submit()
    assert res.status_int == 200
    assert error in res.text


def test_register_refuses_a_taken_username(web):
    register(web, "alice")
    res = register(web, "alice")
    assert "The username is already taken" in res.text


def test_login_errors(web):
    register(web, "alice", "right")
    assert "Invalid username" in login(web, "nobody").text
    assert "Invalid password" in login(web, "alice", "wrong").text


def test_post_message_shows_on_my_and_public_timeline(web):
    signed_up(web, "alice")
    res = post(web, "Hello world")
    assert "Your message was recorded" in res.text
    assert "Hello world" in res.text
    assert "Hello world" in web.get("/public").text
    assert "Hello world" in web.get("/alice").text


def test_messages_are_escaped(web):
    signed_up(web, "alice")
    res = post(web, "<script>alert(1)</script>")
    assert "<script>alert(1)</script>" not in res.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in res.text


def test_follow_and_unfollow(web):
    register(web, "bob")
    signed_up(web, "bob")
    post(web, "bob was here")
    button_form(web.get("/"), "/logout").submit()
    signed_up(web, "alice")

    assert "bob was here" not in web.get("/").text
    page = web.get("/bob")
    assert "You are not yet following this user." in page.text

    res = button_form(page, "/bob/follow").submit().follow()
    assert 'You are now following "bob"' in unescape(res.text)
    assert "You are currently following this user." in res.text
    assert "bob was here" in web.get("/").text

    res = button_form(res, "/bob/unfollow").submit().follow()
    assert 'You are no longer following "bob"' in unescape(res.text)
    assert "bob was here" not in web.get("/").text


def test_own_page_says_this_is_you(web):
    signed_up(web, "alice")
    assert "This is you!" in web.get("/alice").text


def test_unknown_user_is_a_friendly_404(web):
    res = web.get("/nobody", status=404)
    assert "There is no user called nobody." in res.text
    assert "MiniTwit" in res.text
    assert "Traceback" not in res.text


def test_a_404_page_still_shows_who_is_signed_in(web):
    signed_up(web, "alice")
    res = web.get("/nobody", status=404)
    assert "sign out [alice]" in res.text


def test_dates_are_shown_as_day_and_minute(web, mock_db):
    uid = store.create_user(mock_db, "carol", "c@example.com", "x")
    carol = store.get_user_by_id(mock_db, uid)
    store.add_message(mock_db, carol, "dated", pub_date=1582260561)
    assert "2020-02-21 @ 04:49" in web.get("/public").text


def test_timelines_page_by_30_with_a_link_to_older(web, mock_db):
    uid = store.create_user(mock_db, "carol", "c@example.com", "x")
    carol = store.get_user_by_id(mock_db, uid)
    for i in range(65):
        store.add_message(mock_db, carol, f"message number {i}")

    first = web.get("/carol")
    shown = re.findall(r"message number (\d+)", first.text)
    assert shown == [str(i) for i in range(64, 34, -1)]

    second = first.click("Older messages")
    shown = re.findall(r"message number (\d+)", second.text)
    assert shown == [str(i) for i in range(34, 4, -1)]

    third = second.click("Older messages")
    assert re.findall(r"message number (\d+)", third.text) == [
        "4", "3", "2", "1", "0"]
    assert "Older messages" not in third.text


def test_avatar_is_served_from_our_origin(web):
    signed_up(web, "alice")
    post(web, "with a face")
    src = re.search(r'<img src="([^"]+)"', web.get("/public").text)[1]
    assert src.startswith("/avatar/")

    res = web.get(src)
    assert res.content_type == "image/svg+xml"
    assert res.body.startswith(b"<svg")


def test_legacy_werkzeug_hash_signs_in_and_is_upgraded(web, mock_db):
    legacy = ("scrypt:32768:8:1$FNWPW0K83ue0NgJ8$61c8b5cd944c335fe7bbb6b6c9"
              "d7cefbd95fee3a4b1589dc5474917b515fbebd240e23959c2003dc908c0b"
              "ad547dfb6eb8ab8b64b198b99ce43c4517e701643f")
    store.create_user(mock_db, "Roger Histand", "r@example.com", legacy)

    res = login(web, "Roger Histand", "]=)[X{Km{z")
    assert "You were logged in" in res.follow().text
    stored = store.get_user(mock_db, "Roger Histand")["pw_hash"]
    assert stored.startswith("$argon2id$")


def test_new_passwords_are_argon2(web, mock_db):
    register(web, "alice", "pw")
    assert store.get_user(mock_db, "alice")["pw_hash"].startswith(
        "$argon2id$")


def test_a_post_without_the_csrf_token_is_refused(web):
    signed_up(web, "alice")
    res = web.post("/add_message", {"text": "forged"}, status=403)
    assert "forged" not in web.get("/public").text
    assert "Traceback" not in res.text


def test_a_cross_site_post_without_cookies_is_refused(web):
    signed_up(web, "alice")
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      web.get("/").text)[1]
    web.reset()
    web.post("/login", {"csrf_token": token, "username": "alice",
                        "password": "secret"}, status=403)


def test_a_refused_cross_site_post_does_not_sign_the_victim_out(web):
    signed_up(web, "alice")
    session = web.cookies["session"]
    web.reset()  # SameSite=Lax: a cross-site post carries no cookie
    res = web.post("/add_message", {"text": "forged"}, status=403)
    assert "Set-Cookie" not in res.headers

    web.set_cookie("session", session.strip('"'))
    assert "My timeline" in web.get("/").text


def test_a_tampered_session_cookie_signs_nobody_in(web):
    signed_up(web, "alice")
    cookie = web.cookies["session"]
    payload, mac = cookie.strip('"').split(".")
    web.set_cookie("session", payload + "." + mac[:-2] + "AA")
    assert web.get("/").status_int == 302


def test_signing_out_ends_the_session_even_for_a_copied_cookie(web):
    signed_up(web, "alice")
    copied = web.cookies["session"]
    button_form(web.get("/"), "/logout").submit()

    web.set_cookie("session", copied.strip('"'))
    assert web.get("/").status_int == 302


def test_session_cookie_is_httponly_and_samesite(web):
    res = web.get("/login")
    cookie = res.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie


def test_security_headers_on_pages_and_api(web):
    for res in [web.get("/public"), web.get("/api/latest"),
                web.get("/nobody", status=404)]:
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in res.headers[
            "Content-Security-Policy"]


def test_a_user_named_like_a_route_keeps_the_route(web, mock_db):
    store.create_user(mock_db, "public", "p@example.com", hash_password("x"))
    uid = store.get_user(mock_db, "public")
    store.add_message(mock_db, uid, "I am public")

    page = web.get("/public")
    assert "Public timeline" in page.text
    assert 'href="/users/public"' in page.text
    assert "public's timeline" in unescape(web.get("/users/public").text)


def test_database_failure_is_a_503_page(web, mock_db, monkeypatch):
    from pymongo.errors import ServerSelectionTimeoutError

    def down(*args, **kwargs):
        raise ServerSelectionTimeoutError("no servers")

    monkeypatch.setattr(store, "public_timeline", down)
    res = web.get("/public", status=503)
    assert "cannot reach its database" in res.text
    assert "Traceback" not in res.text


def test_an_unexpected_error_is_a_friendly_500(web, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(store, "public_timeline", broken)
    res = web.get("/public", status=500, expect_errors=True)
    assert "Something went wrong" in res.text
    assert "boom" not in res.text
    assert "Traceback" not in res.text


def test_health_reports_ok(web):
    assert web.get("/health").json == {"status": "ok"}
