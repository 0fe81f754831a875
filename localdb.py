"""Local FerretDB server standing in for MongoDB in development and tests.

The server is a small Go program in ferretdb/ that embeds FerretDB with
SQLite storage; this module builds it when needed and runs it.
"""

import argparse
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymongo
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent
SOURCE_DIR = ROOT / "ferretdb"
BINARY = ROOT / "build" / "ferretdb"
LOG_NAME = "ferretdb.log"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

log = logging.getLogger(__name__)


class LocalDBError(RuntimeError):
    """The local database could not be built or started."""


def find_go():
    """Return the path of the Go tool, or raise LocalDBError."""
    candidates = [os.environ.get("GO"), shutil.which("go"),
                  "/usr/local/go/bin/go"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate

    raise LocalDBError("Go is needed to build FerretDB and was not found "
                       "(set GO to its path or put it on PATH)")


def source_files():
    """Return the files the server binary is built from."""
    return [*SOURCE_DIR.glob("*.go"), SOURCE_DIR / "go.mod",
            SOURCE_DIR / "go.sum"]


def needs_build():
    """Tell whether the binary is missing or older than its sources."""
    if not BINARY.exists():
        return True

    built = BINARY.stat().st_mtime
    return any(path.stat().st_mtime > built for path in source_files())


def build(force=False):
    """Build the server binary unless it is up to date; return its path."""
    if not force and not needs_build():
        return BINARY

    log.info("building FerretDB into %s", BINARY)
    started = time.monotonic()
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [find_go(), "build", "-buildvcs=false", "-o", str(BINARY), "."],
        cwd=SOURCE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    if result.returncode != 0:
        raise LocalDBError("building FerretDB (needs Go 1.24 or newer) "
                           "failed:\n" + result.stdout)

    log.info("built FerretDB in %.1f s", time.monotonic() - started)
    return BINARY


def free_port(host="127.0.0.1"):
    """Return a TCP port on host that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def die_with_parent():
    """Ask Linux to send SIGTERM to this child when its parent dies."""
    # NOTE: without this a killed test run or launcher would leave the
    # server holding its port and data directory.
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def tail(path, lines=20):
    """Return the last lines of a text file, or '' if it is missing."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""

    return "\n".join(text.splitlines()[-lines:])


class LocalServer:
    """One FerretDB process on host:port keeping its data in data_dir.

    It can be stopped, killed and started again on the same port and
    data directory; what was written before survives a clean stop.
    """

    def __init__(self, data_dir, host="127.0.0.1", port=None,
                 log_level="warn"):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port or free_port(host)
        self.log_level = log_level
        self.log_path = self.data_dir / LOG_NAME
        self.process = None
        self._port_chosen = port is None
        self._started_once = False

    @property
    def uri(self):
        """Return the MongoDB URI that reaches this server."""
        return f"mongodb://{self.host}:{self.port}/"

    @property
    def running(self):
        """Tell whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self, timeout=START_TIMEOUT):
        """Start the server and wait until it answers a ping."""
        if self.running:
            return self

        binary = build()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            self._spawn(binary)
            if self._wait_ready(timeout):
                self._started_once = True
                log.info("FerretDB ready at %s (data in %s)",
                         self.uri, self.data_dir)
                return self

            # A port picked for us may have been taken meanwhile; only
            # then is another port harmless to try.
            if self.running or not self._port_chosen or self._started_once:
                break
            self.port = free_port(self.host)

        self.kill()
        raise LocalDBError(
            f"FerretDB did not answer at {self.uri} within {timeout:.0f} s;"
            f" last lines of {self.log_path}:\n{tail(self.log_path)}")

    def _spawn(self, binary):
        """Run the server process with its output going to the log file."""
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [str(binary), "-listen-addr", f"{self.host}:{self.port}",
                 "-data-dir", str(self.data_dir),
                 "-log-level", self.log_level],
                stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)

    def _wait_ready(self, timeout):
        """Return True once the server answers a ping, False if it can't."""
        deadline = time.monotonic() + timeout

        # Poll the port first: a client that fails to connect backs off
        # for half a second before its next try.
        while not self._accepts_connections():
            if not self.running or time.monotonic() > deadline:
                return False
            time.sleep(0.02)

        remaining_ms = max(deadline - time.monotonic(), 0.1) * 1000
        client = pymongo.MongoClient(
            self.uri, directConnection=True,
            serverSelectionTimeoutMS=remaining_ms)
        try:
            client.admin.command("ping")
            return True
        except PyMongoError as error:
            log.warning("FerretDB at %s does not answer: %s", self.uri, error)
            return False
        finally:
            client.close()

    def _accepts_connections(self):
        """Tell whether something accepts TCP connections on our port."""
        try:
            with socket.create_connection((self.host, self.port), 0.2):
                return True
        except OSError:
            return False

    def stop(self, timeout=STOP_TIMEOUT):
        """Stop the server with SIGTERM, killing it if it lingers."""
        if not self.running:
            self._reap()
            return

        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("FerretDB ignored SIGTERM for %.0f s; killing it",
                        timeout)
            self.process.kill()
        self._reap()

    def kill(self):
        """Kill the server at once, as a crash would."""
        if self.running:
            self.process.kill()
        self._reap()

    def _reap(self):
        """Wait for a finished process so it leaves no zombie."""
        if self.process is not None:
            self.process.wait()
            self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


def serve(data_dir, host, port):
    """Run a server in the foreground until Ctrl-C or SIGTERM."""
    server = LocalServer(data_dir, host=host, port=port, log_level="info")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        print(f"FerretDB serving {server.uri} (log in {server.log_path})",
              flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    print("FerretDB stopped", flush=True)


def main(argv=None):
    """Build or serve the local database from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build", help="build the server binary")
    build_cmd.add_argument("--force", action="store_true",
                           help="rebuild even if up to date")
    serve_cmd = commands.add_parser("serve", help="run a server")
    serve_cmd.add_argument("--data-dir", default="data/ferretdb")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=27017)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(name)s %(message)s")
    try:
        if args.command == "build":
            print(build(force=args.force))
        else:
            serve(args.data_dir, args.host, args.port)
    except LocalDBError as error:
        sys.exit(str(error))


if __name__ == "__main__":
    main()
