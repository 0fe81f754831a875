"""gunicorn settings for MiniTwit, read from the environment.

Run as `gunicorn -c gunicorn.conf.py wsgi:app`; `make run` and the
deployed service (deploy/minitwit.service) both do, so every setting lives
here and only the values below that come from the environment differ.
"""

import os

_cores = os.cpu_count() or 1

_host = os.environ.get("MINITWIT_HOST", "127.0.0.1")
_port = os.environ.get("PORT", "8080")
bind = f"{_host}:{_port}"

# Requests mostly wait on the database, so a few processes with a handful
# of threads each keep two cores busy. The simulator opens a connection per
# request (Connection: close), which threads accept cheaply; processes
# beyond cores + 1 would only add MongoClients and memory.
worker_class = "gthread"
workers = int(os.environ.get("MINITWIT_WORKERS", _cores + 1))
threads = int(os.environ.get("MINITWIT_THREADS", 4))

# NOTE: no preload: each worker must open its own MongoClient after fork.
preload_app = False

timeout = 30
graceful_timeout = 10
keepalive = 2

accesslog = "-" if os.environ.get("MINITWIT_ACCESS_LOG") == "1" else None
errorlog = "-"
loglevel = os.environ.get("MINITWIT_LOG_LEVEL", "info")

# NOTE: the control socket's default path is shared by every gunicorn of
# the user, so a test's server would take it from `make run`'s; nothing
# here uses it.
control_socket_disable = True
