"""Run MiniTwit locally: a FerretDB server (unless given a MongoDB URI)
and gunicorn serving `wsgi:app` over it.

`make run` runs this module; end-to-end tests use its Stack.
"""

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localdb import LocalServer, die_with_parent, free_port, tail

ROOT = Path(__file__).resolve().parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
START_TIMEOUT = 30.0
# Longer than gunicorn's graceful_timeout, so workers finish in-flight
# requests before we resort to SIGKILL.
STOP_TIMEOUT = 15.0

# NOTE: an opener without proxies, so a proxy set in the environment
# never sees requests meant for our own local server.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The app server could not be started."""


class Stack:
    """The database (local unless a URI is given) and gunicorn over it.

    Use it as a context manager; `db_server` is the LocalServer, or None
    when an outside MongoDB is used, so fault tests can stop, kill and
    start the database under a running app.
    """

    def __init__(self, data_dir, port=None, host="127.0.0.1",
                 mongo_uri=None, app_log=None, env=None, app="wsgi:app"):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.app_log = Path(app_log) if app_log else None
        self.extra_env = dict(env or {})
        self.wsgi_app = app
        self.db_server = None
        self.app = None
        self._mongo_uri = mongo_uri

    @property
    def base_url(self):
        """Return the URL of the app, without a trailing slash."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def mongo_uri(self):
        """Return the URI of the database the app uses."""
        if self.db_server is not None:
            return self.db_server.uri
        return self._mongo_uri

    def start(self):
        """Start the database if it is ours, then the app."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._mongo_uri is None and self.db_server is None:
            self.db_server = LocalServer(self.data_dir / "ferretdb")
        if self.db_server is not None:
            self.db_server.start()

        self.start_app()
        return self

    def start_app(self, timeout=START_TIMEOUT):
        """Start gunicorn on our port and wait until /health says ok."""
        if self.app_running:
            return

        self.app = self._spawn_app()
        try:
            self._wait_healthy(timeout)
        except StackError:
            self.stop_app()
            raise
        log.info("MiniTwit serving %s (pid %d)", self.base_url, self.app.pid)

    def _spawn_app(self):
        """Run gunicorn in its own process group, output to app_log."""
        env = {**os.environ, **self.extra_env,
               "PORT": str(self.port), "MINITWIT_HOST": self.host,
               "MINITWIT_DATA_DIR": str(self.data_dir),
               "MINITWIT_MONGO_URI": self.mongo_uri}
        command = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF),
                   self.wsgi_app]
        output = open(self.app_log, "ab") if self.app_log else None
        try:
            return subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=die_with_parent)
        finally:
            if output:
                output.close()

    def _wait_healthy(self, timeout):
        """Return once GET /health answers 200; raise StackError if not."""
        deadline = time.monotonic() + timeout
        answer = "no answer"
        while time.monotonic() < deadline:
            if not self.app_running:
                raise StackError("gunicorn exited at start-up"
                                 + self._log_tail())
            try:
                DIRECT.open(self.base_url + "/health", timeout=2).close()
                return
            except urllib.error.HTTPError as error:
                answer = f"HTTP {error.code}"
            except OSError as error:
                answer = str(error)
            time.sleep(0.1)

        raise StackError(f"{self.base_url}/health not ok within "
                         f"{timeout:.0f} s ({answer})" + self._log_tail())

    def _log_tail(self):
        """Return the end of the app log for an error message."""
        if not self.app_log:
            return ""
        return f"; last lines of {self.app_log}:\n{tail(self.app_log)}"

    @property
    def app_running(self):
        """Tell whether the gunicorn master is alive."""
        return self.app is not None and self.app.poll() is None

    def stop_app(self, timeout=STOP_TIMEOUT):
        """Stop gunicorn gracefully, killing its process group if it hangs."""
        if self.app is None:
            return

        if self.app_running:
            self.app.terminate()
        try:
            self.app.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("gunicorn still running after %.0f s; killing it",
                        timeout)
        # Workers whose master died or hung must not outlive it.
        try:
            os.killpg(self.app.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.app.wait()
        self.app = None

    def stop(self):
        """Stop the app, then the database if it is ours."""
        self.stop_app()
        if self.db_server is not None:
            self.db_server.stop()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc_info):
        self.stop()


def settings_from_env(env=os.environ):
    """Return the Stack arguments that the environment describes."""
    return {
        "data_dir": Path(env.get("MINITWIT_DATA_DIR") or ROOT / "data"),
        "port": int(env.get("PORT", "8080")),
        "host": env.get("MINITWIT_HOST", "127.0.0.1"),
        "mongo_uri": env.get("MINITWIT_MONGO_URI") or None,
    }


def raise_keyboard_interrupt(signum, frame):
    """Treat SIGTERM like Ctrl-C, so both shut down the same way."""
    raise KeyboardInterrupt


def main():
    """Serve until Ctrl-C or SIGTERM, then stop the app and the database."""
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    # A shell starting us in the background ignores SIGINT for us; Ctrl-C
    # and kill -INT must still shut down cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = Stack(**settings_from_env())
    try:
        stack.start()
        stack.app.wait()
        log.error("gunicorn exited by itself with status %d",
                  stack.app.returncode)
        status = 1
    except KeyboardInterrupt:
        status = 0
    except Exception as error:
        log.error("could not start MiniTwit: %s", error)
        status = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        shutdown(stack)
    return status


def shutdown(stack):
    """Stop the app, then the database, saying so once each."""
    if stack.app is not None:
        stack.stop_app()
        log.info("MiniTwit app server stopped")
    if stack.db_server is not None and stack.db_server.running:
        stack.db_server.stop()
        log.info("FerretDB stopped")


if __name__ == "__main__":
    sys.exit(main())
