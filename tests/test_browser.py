"""The web app in a real browser, served as `make run` serves it.

Chromium talks to gunicorn over a real local FerretDB. Every page visited
must load without a console error, an uncaught error or a CSP violation;
the few tests that expect an error status take the one message it causes.
"""

import itertools
import re

import pytest
from browser_support import (
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    TIMEOUT_MS,
    OtherSite,
    PageWatch,
    Simulator,
    forged_post_page,
    launch_chromium,
)

pytestmark = pytest.mark.slow

_names = itertools.count(1)


def unique(name):
    """Return a user name no other test uses."""
    return f"{name}{next(_names)}"


@pytest.fixture(scope="module")
def simulator(stack):
    """Return a client of the running app's simulator API."""
    return Simulator(stack.base_url)


@pytest.fixture(scope="module")
def chromium():
    """Start one headless Chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@pytest.fixture
def watched(chromium, stack):
    """Return a fresh browser context on the app and its PageWatch."""
    context, watch = open_context(chromium, stack.base_url, DESKTOP)
    yield context, watch
    context.close()
    assert watch.problems == []


@pytest.fixture
def page(watched):
    """Return a page in a fresh context; its problems fail the test."""
    context, _ = watched
    return context.new_page()


@pytest.fixture
def watch(watched):
    """Return the PageWatch of the page fixture's context."""
    return watched[1]


def open_context(chromium, base_url, viewport, phone=False):
    """Return a fresh browser context and the PageWatch over it."""
    context = chromium.new_context(base_url=base_url, viewport=viewport,
                                   is_mobile=phone, has_touch=phone)
    context.set_default_timeout(TIMEOUT_MS)
    return context, PageWatch(context)


# Steps a person takes -----------------------------------------------------

def sign_up(page, username, email=None, password="secret", password2=None):
    """Fill in and send the sign-up form."""
    page.goto("/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-Mail").fill(
        f"{username}@example.com" if email is None else email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Password (repeat)").fill(
        password if password2 is None else password2)
    press(page, "Sign Up")


def sign_in(page, username, password="secret"):
    """Fill in and send the sign-in form."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    press(page, "Sign In")


def press(page, name):
    """Click a button that sends a form and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=name).click()


def click_link(page, name):
    """Click a link and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("link", name=name).click()


def signed_up(page, username):
    """Create an account and sign in with it."""
    sign_up(page, username)
    sign_in(page, username)
    assert flashes(page) == ["You were logged in"]


def post(page, text):
    """Share a message from my timeline."""
    page.goto("/")
    page.get_by_label(re.compile("What's on your mind")).fill(text)
    press(page, "Share")


def sign_out(page):
    """Press the sign-out button in the navigation bar."""
    press(page, re.compile(r"^sign out"))


def flashes(page):
    """Return the flash messages on the page."""
    return page.locator("ul.flashes li").all_inner_texts()


def message_texts(page):
    """Return only what each message says, without author or date."""
    return page.eval_on_selector_all(
        "ul.messages li p",
        """paragraphs => paragraphs.map(p => [...p.childNodes]
             .filter(node => node.nodeType === Node.TEXT_NODE)
             .map(node => node.textContent).join("").trim())""")


def heading(page):
    """Return the page's own heading."""
    return page.locator("main h2").inner_text()


# Accounts -----------------------------------------------------------------

def test_sign_up_sign_in_and_sign_out(page):
    name = unique("alice")
    sign_up(page, name)
    assert page.url.endswith("/login")
    assert flashes(page) == [
        "You were successfully registered and can login now"]

    sign_in(page, name)
    assert flashes(page) == ["You were logged in"]
    assert heading(page) == "My timeline"
    assert page.get_by_role("button", name=f"sign out [{name}]").is_visible()

    sign_out(page)
    assert flashes(page) == ["You were logged out"]
    assert heading(page) == "Public timeline"
    assert page.get_by_role("link", name="sign in").is_visible()


@pytest.mark.parametrize("fields, error", [
    ({"username": ""}, "You have to enter a username"),
    ({"email": ""}, "You have to enter a valid email address"),
    ({"password": ""}, "You have to enter a password"),
    ({"password2": "other"}, "The two passwords do not match"),
    ({"username": "public"},
     "That username is reserved, please choose another"),
])
def test_sign_up_errors(page, fields, error):
    values = {"username": unique("bob"), "email": None, "password": "pw",
              "password2": None, **fields}
    if values["email"] is None:
        values["email"] = f"{values['username'] or 'x'}@example.com"
    sign_up(page, **values)

    assert page.url.endswith("/register")
    assert page.get_by_role("alert").inner_text() == f"Error: {error}"
    assert page.get_by_label("Username").input_value() == values["username"]


def test_sign_up_with_a_taken_name_is_refused(page):
    name = unique("carol")
    sign_up(page, name)
    sign_up(page, name)
    assert page.get_by_role("alert").inner_text() == (
        "Error: The username is already taken")


def test_sign_in_with_a_wrong_password_or_name(page):
    name = unique("dave")
    sign_up(page, name, password="right")

    sign_in(page, name, password="wrong")
    assert page.get_by_role("alert").inner_text() == "Error: Invalid password"
    assert heading(page) == "Sign In"

    sign_in(page, unique("nobody"))
    assert page.get_by_role("alert").inner_text() == "Error: Invalid username"

    page.goto("/")
    assert heading(page) == "Public timeline"


# Messages -----------------------------------------------------------------

def test_post_a_message(page):
    name = unique("erin")
    signed_up(page, name)
    post(page, "Hello from a real browser")

    assert flashes(page) == ["Your message was recorded"]
    assert message_texts(page)[0] == "Hello from a real browser"
    author = page.locator("ul.messages li").first.get_by_role("link")
    assert author.inner_text() == name

    page.goto("/public")
    assert "Hello from a real browser" in message_texts(page)


def test_html_in_a_message_is_shown_as_text(page):
    text = ('<b>bold</b> <script>window.pwned = 1</script>'
            '<img src="/nowhere.png" onerror="window.pwned = 2">')
    signed_up(page, unique("frank"))
    post(page, text)

    first = page.locator("ul.messages li p").first
    assert message_texts(page)[0] == text
    assert first.locator("b, script, img").count() == 0
    assert page.evaluate("window.pwned") is None


def test_a_message_sent_through_the_api_is_on_the_public_timeline(
        page, simulator):
    name = unique("Grace Hopper ")
    simulator.register(name)
    simulator.tweet(name, "Posted by the simulator")

    page.goto("/public")
    first = page.locator("ul.messages li").first
    assert first.get_by_role("link").inner_text() == name
    assert message_texts(page)[0] == "Posted by the simulator"

    with page.expect_navigation():
        first.get_by_role("link").click()
    assert heading(page) == f"{name}'s timeline"


def test_paging_to_older_messages(page, simulator):
    name = unique("heidi")
    simulator.register(name)
    for number in range(35):
        simulator.tweet(name, f"message number {number}")

    page.goto(f"/{name}")
    assert message_texts(page) == [
        f"message number {n}" for n in range(34, 4, -1)]

    click_link(page, "Older messages")
    assert message_texts(page) == [
        f"message number {n}" for n in range(4, -1, -1)]
    assert page.get_by_role("link", name="Older messages").count() == 0


# Following ----------------------------------------------------------------

def test_follow_see_on_my_timeline_and_unfollow(page, simulator):
    author = unique("ivan")
    simulator.register(author)
    simulator.tweet(author, "ivan was here")
    signed_up(page, unique("judy"))
    assert "ivan was here" not in message_texts(page)

    page.goto(f"/{author}")
    status = page.locator(".followstatus")
    assert "You are not yet following this user." in status.inner_text()
    press(page, "Follow user")
    assert flashes(page) == [f'You are now following "{author}"']
    assert "You are currently following this user." in status.inner_text()

    click_link(page, "my timeline")
    assert "ivan was here" in message_texts(page)

    page.goto(f"/{author}")
    press(page, "Unfollow user")
    assert flashes(page) == [f'You are no longer following "{author}"']
    assert "You are not yet following this user." in status.inner_text()

    click_link(page, "my timeline")
    assert "ivan was here" not in message_texts(page)


def test_my_own_page_says_this_is_you(page):
    name = unique("kim")
    signed_up(page, name)
    page.goto(f"/{name}")
    assert page.locator(".followstatus").inner_text().strip() == (
        "This is you!")
    assert page.get_by_role("button", name="Follow user").count() == 0


def test_unknown_user_is_a_404_page(page, watch):
    answer = page.goto("/no-such-user")

    assert answer.status == 404
    assert heading(page) == "Not found"
    assert "There is no user called no-such-user." in page.inner_text("main")
    assert page.get_by_role("link", name="public timeline").count() == 2
    problems = watch.take()
    assert len(problems) == 1 and "status of 404" in problems[0], problems


# Security -----------------------------------------------------------------

def test_the_csp_blocks_inline_script_and_the_watch_sees_it(page, watch):
    page.goto("/public")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.append(script);
    }""")

    assert page.evaluate("window.injected") is None
    problems = wait_for_problems(page, watch, 2)
    assert any(p.startswith("CSP violation: script-src") for p in problems)
    assert any("Content Security Policy" in p for p in problems)


def wait_for_problems(page, watch, count):
    """Return the watch's problems once count arrived, or after 5 s."""
    for _ in range(100):
        if len(watch.problems) >= count:
            break
        page.wait_for_timeout(50)  # lets Playwright deliver the events
    return watch.take()


# 127.0.0.2 is another site: the browser withholds the SameSite=Lax
# cookie. Another port on 127.0.0.1 is the same site on another origin:
# the cookie goes along and only the CSRF token stands in the way.
@pytest.mark.parametrize("other_host", ["127.0.0.2", "127.0.0.1"],
                         ids=["cross-site", "same-site-other-port"])
def test_a_post_from_another_origin_is_refused(page, watch, other_host):
    name = unique("mallory_target")
    signed_up(page, name)
    action = page.url.rsplit("/", 1)[0] + "/add_message"
    forged = forged_post_page(action, {"text": "forged message",
                                       "csrf_token": "guessed"})

    with OtherSite(other_host, forged) as site:
        with page.expect_response(action) as answer:
            page.goto(site.url)
        assert answer.value.status == 403
        page.wait_for_load_state()
        assert "came from elsewhere" in page.inner_text("main")

    problems = watch.take()
    assert problems and all("403" in p for p in problems), problems
    page.goto("/public")
    assert "forged message" not in message_texts(page)
    page.goto("/")
    assert heading(page) == "My timeline"


def test_the_session_cookie_is_httponly_and_samesite(page, watched):
    context, _ = watched
    signed_up(page, unique("niaj"))

    assert "session" not in page.evaluate("document.cookie")
    cookie = next(c for c in context.cookies() if c["name"] == "session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"


# How the pages look -------------------------------------------------------

SHOWCASE_USERS = ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
SHOWCASE_MESSAGES = [
    ("Alan Turing", "We can only see a short distance ahead, but we can "
     "see plenty there that needs to be done."),
    ("Grace Hopper", "The most dangerous phrase in the language is: "
     "we've always done it this way."),
    ("Ada Lovelace", "The engine might compose elaborate pieces of music "
     "of any degree of complexity or extent."),
    ("Grace Hopper", "A ship in port is safe, but that is not what ships "
     "are built for."),
    ("Ada Lovelace", "That brain of mine is something more than merely "
     "mortal; as time will show."),
    ("Alan Turing", "Those who can imagine anything, can create the "
     "impossible. <em>Tags</em> stay text."),
]
SHOWCASE_START = 1_700_000_000


@pytest.fixture(scope="module")
def showcase(stack, tmp_path_factory):
    """Serve fixed content from a fresh database, for stable screenshots."""
    import pymongo

    from serve import Stack

    client = pymongo.MongoClient(stack.mongo_uri)
    client.drop_database("showcase")
    seed_showcase(client.showcase)

    data_dir = tmp_path_factory.mktemp("showcase")
    with Stack(data_dir, mongo_uri=stack.mongo_uri,
               env={"MINITWIT_DB_NAME": "showcase"}) as running:
        yield running
    client.drop_database("showcase")
    client.close()


def seed_showcase(db):
    """Store the showcase users, who follows whom, and their messages."""
    import store
    from passwords import hash_password

    store.ensure_indexes(db)
    ids = {name: store.create_user(db, name, _email(name),
                                   hash_password("secret"))
           for name in SHOWCASE_USERS}
    store.follow(db, ids["Ada Lovelace"], ids["Alan Turing"])

    for minutes, (name, text) in enumerate(SHOWCASE_MESSAGES):
        author = store.get_user_by_id(db, ids[name])
        store.add_message(db, author, text,
                          pub_date=SHOWCASE_START + 1260 * minutes)


def _email(name):
    return name.lower().replace(" ", ".") + "@example.com"


@pytest.mark.parametrize("size, viewport", [("desktop", DESKTOP),
                                            ("phone", PHONE)])
def test_screenshots_of_the_main_pages(chromium, showcase, size, viewport):
    context, watch = open_context(chromium, showcase.base_url, viewport,
                                  phone=size == "phone")
    page = context.new_page()
    sign_in(page, "Ada Lovelace")
    assert flashes(page) == ["You were logged in"]

    for name, path in [("public", "/public"), ("user", "/Alan%20Turing"),
                       ("timeline", "/")]:
        page.goto(path)
        assert_readable(page)
        page.screenshot(path=SCREENSHOTS / f"{name}-{size}.png",
                        full_page=True, animations="disabled")

    context.close()
    assert watch.problems == []


def assert_readable(page):
    """Check what a screenshot cannot: fit, labels, alt text, layout."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], "page scrolls sideways"

    unlabelled = page.eval_on_selector_all(
        "input:not([type=hidden]), textarea, select",
        "fields => fields.filter(f => f.labels.length === 0).length")
    assert unlabelled == 0
    assert page.locator("img:not([alt]), img[alt='']").count() == 0

    avatar = page.locator("ul.messages li img").first.bounding_box()
    text = page.locator("ul.messages li p").first.bounding_box()
    assert avatar["x"] + avatar["width"] <= text["x"] + 12
    assert avatar["y"] < text["y"] + text["height"]
