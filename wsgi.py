"""The WSGI entry point that gunicorn serves: `gunicorn wsgi:app`."""

import logging
import sys

from app import create_app

# NOTE: gunicorn imports this module in each worker after it forks (no
# preload), so every worker process gets its own MongoClient.
logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")

app = create_app()
