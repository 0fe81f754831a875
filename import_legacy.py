"""Import a database of the original SQLite MiniTwit into our MongoDB.

    python import_legacy.py path/to/minitwit.db

Users keep their password hashes (upgraded on their next sign-in), follows
and messages keep their authors and dates, flagged messages stay hidden.
Running it twice adds nothing twice: users are matched by name, messages by
their old id. Without MINITWIT_MONGO_URI it starts the local server over
the data directory, so stop `make run` first.
"""

import argparse
import logging
import sqlite3
import sys
from contextlib import closing

from pymongo.errors import BulkWriteError

import config as configuration
import store

log = logging.getLogger(__name__)

BATCH = 1000
DUPLICATE_KEY = 11000


def import_database(db, path):
    """Copy users, follows and messages from the SQLite file at path."""
    store.ensure_indexes(db)
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as src:
        users = import_users(db, src)
        follows = import_follows(db, src, users)
        messages = import_messages(db, src, users)
    return {"users": len(users), "follows": follows, "messages": messages}


def import_users(db, src):
    """Create missing users; return their ids by old user id."""
    ids = {}
    rows = src.execute("SELECT user_id, username, email, pw_hash FROM user "
                       "ORDER BY user_id")
    for old_id, username, email, pw_hash in rows:
        try:
            ids[old_id] = store.create_user(db, username, email, pw_hash)
        except store.UsernameTaken:
            ids[old_id] = store.get_user(db, username)["_id"]
    return ids


def import_follows(db, src, users):
    """Add each old follow, in the order it was made; return the count."""
    followed = {}
    rows = src.execute("SELECT who_id, whom_id FROM follower ORDER BY rowid")
    for who, whom in rows:
        if who in users and whom in users:
            followed.setdefault(users[who], []).append(users[whom])

    for who, whoms in followed.items():
        store.follow_all(db, who, whoms)
    return sum(len(whoms) for whoms in followed.values())


def import_messages(db, src, users):
    """Add the messages not imported before; return how many were added."""
    done = {doc["_id"] for doc in db.messages.find(
        {"_id": {"$regex": "^legacy-"}}, {"_id": 1})}
    rows = [row for row in src.execute(
        "SELECT message_id, author_id, text, pub_date, flagged FROM message "
        "ORDER BY pub_date, message_id")
        if _message_id(row[0]) not in done and row[1] in users]

    authors = {}
    added = 0
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        first = store.reserve_seqs(db, len(batch))
        docs = [_message_doc(db, authors, users, row, first + i)
                for i, row in enumerate(batch)]
        added += _insert_new(db, docs)
    return added


def _message_doc(db, authors, users, row, seq):
    """Return the document of one old message."""
    old_id, author_id, text, pub_date, flagged = row
    if author_id not in authors:
        authors[author_id] = store.get_user_by_id(db, users[author_id])
    author = authors[author_id]
    return store.message_doc(author, text, pub_date, seq,
                             message_id=_message_id(old_id),
                             flagged=bool(flagged))


def _insert_new(db, docs):
    """Insert documents, skipping any that another run inserted meanwhile."""
    try:
        return len(db.messages.insert_many(docs, ordered=False)
                   .inserted_ids)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e["code"] != DUPLICATE_KEY for e in errors):
            raise
        return exc.details["nInserted"]


def _message_id(old_id):
    return f"legacy-{old_id}"


def main(argv=None):
    """Import the file named on the command line."""
    logging.basicConfig(level=logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database", help="the original MiniTwit's SQLite "
                                         "file")
    args = parser.parse_args(argv)
    config = configuration.from_env()

    with _database(config) as db:
        counts = import_database(db, args.database)
    log.info("imported %(users)d users, %(follows)d follows, "
             "%(messages)d new messages", counts)
    return 0


class _database:
    """The configured database, on a local server started for the import."""

    def __init__(self, config):
        self.config = config
        self.server = None

    def __enter__(self):
        import pymongo

        uri = self.config.mongo_uri
        if uri is None:
            from localdb import LocalServer

            self.server = LocalServer(self.config.data_dir / "ferretdb")
            self.server.start()
            uri = self.server.uri
        self.client = pymongo.MongoClient(uri)
        return self.client[self.config.db_name]

    def __exit__(self, *exc):
        self.client.close()
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    sys.exit(main())
