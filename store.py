"""The data layer: every query MiniTwit makes, over one MongoDB database.

Users carry the ids of the users they follow, in the order followed.
Messages live in their own collection and carry their author's name and
avatar hash, so that no timeline needs a join. Every function takes the
database and returns plain Python data.
"""

import hashlib
import logging
import time

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

log = logging.getLogger(__name__)

NOT_IMPLEMENTED = 238

# Each hot query names the index that serves it (see tests/test_store.py).
# NOTE: `flagged` sits between the equality fields and the sort key so that
# a flood of flagged messages never has to be skipped over at read time.
INDEXES = {
    "users": [
        ([("username", ASCENDING)], {"name": "username", "unique": True}),
    ],
    "messages": [
        ([("flagged", ASCENDING), ("seq", DESCENDING)],
         {"name": "public_newest"}),
        ([("author_id", ASCENDING), ("flagged", ASCENDING),
          ("seq", DESCENDING)],
         {"name": "author_newest"}),
    ],
    "sessions": [
        ([("expires", ASCENDING)],
         {"name": "expires", "expireAfterSeconds": 0}),
    ],
}

MESSAGE_FIELDS = {"_id": 0, "seq": 1, "author_id": 1, "username": 1,
                  "email_hash": 1, "text": 1, "pub_date": 1}


class UsernameTaken(Exception):
    """The username belongs to someone else already."""


def ensure_indexes(db):
    """Create every index the queries need; safe to run at every start."""
    for collection, indexes in INDEXES.items():
        for keys, options in indexes:
            _create_index(db[collection], keys, options)


def _create_index(collection, keys, options):
    """Create one index; without expiry where the server cannot expire."""
    try:
        collection.create_index(keys, **options)
    except OperationFailure as exc:
        if exc.code != NOT_IMPLEMENTED or "expireAfterSeconds" not in options:
            raise
        # NOTE: FerretDB has no TTL indexes. Expired sessions are refused
        # when read (session_user_id), so only their clean-up is lost.
        log.warning("this server has no TTL indexes: expired %s are "
                    "refused but never purged", collection.name)
        options = {k: v for k, v in options.items()
                   if k != "expireAfterSeconds"}
        collection.create_index(keys, **options)


# Users ---------------------------------------------------------------------

def email_hash(email):
    """Return the hash that names a user's avatar."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def create_user(db, username, email, pw_hash, user_id=None):
    """Insert a user and return its id; raise UsernameTaken on a clash."""
    doc = {"username": username, "email": email,
           "email_hash": email_hash(email), "pw_hash": pw_hash,
           "follows": []}
    if user_id is not None:
        doc["_id"] = user_id

    # NOTE: the unique index decides; a check before the insert would race.
    try:
        return db.users.insert_one(doc).inserted_id
    except DuplicateKeyError:
        raise UsernameTaken(username) from None


def get_user(db, username):
    """Return the user with that name, or None."""
    return db.users.find_one({"username": username})


def get_user_by_id(db, user_id):
    """Return the user with that id, or None."""
    return db.users.find_one({"_id": user_id})


def set_password_hash(db, user_id, pw_hash):
    """Replace a user's password hash."""
    db.users.update_one({"_id": user_id}, {"$set": {"pw_hash": pw_hash}})


def follow(db, who_id, whom_id):
    """Make one user follow another; following twice stores one follow."""
    db.users.update_one({"_id": who_id}, {"$addToSet": {"follows": whom_id}})


def follow_all(db, who_id, whom_ids):
    """Make one user follow several, in order, skipping those followed."""
    db.users.update_one({"_id": who_id},
                        {"$addToSet": {"follows": {"$each": whom_ids}}})


def unfollow(db, who_id, whom_id):
    """Stop one user following another; a no-op if they did not."""
    db.users.update_one({"_id": who_id}, {"$pull": {"follows": whom_id}})


def is_following(user, other):
    """Return whether user follows other."""
    return other["_id"] in user.get("follows", [])


def followed_usernames(db, user, limit):
    """Return the names of the users someone follows, in follow order."""
    ids = user.get("follows", [])[:limit]
    if not ids:
        return []

    names = {doc["_id"]: doc["username"]
             for doc in db.users.find({"_id": {"$in": ids}},
                                      {"username": 1})}
    return [names[i] for i in ids if i in names]


# Messages ------------------------------------------------------------------

def reserve_seqs(db, count=1):
    """Return the first of count new message sort keys.

    Keys are strictly increasing across processes, which an ObjectId is
    not: within one second its order between processes is random.
    """
    counter = db.counters.find_one_and_update(
        {"_id": "messages"}, {"$inc": {"value": count}},
        upsert=True, return_document=ReturnDocument.AFTER)
    return counter["value"] - count + 1


def message_doc(author, text, pub_date, seq, message_id=None,
                flagged=False):
    """Return the document that stores a message."""
    doc = {"seq": seq, "author_id": author["_id"],
           "username": author["username"],
           "email_hash": author["email_hash"], "text": text,
           "pub_date": int(pub_date), "flagged": flagged}
    if message_id is not None:
        doc["_id"] = message_id
    return doc


def add_message(db, author, text, pub_date=None, flagged=False):
    """Store a message by author and return its sort key."""
    when = time.time() if pub_date is None else pub_date
    doc = message_doc(author, text, when, reserve_seqs(db), flagged=flagged)
    db.messages.insert_one(doc)
    return doc["seq"]


def public_timeline(db, limit, before=None):
    """Return the newest unflagged messages of everyone."""
    return _timeline(db, {}, limit, before)


def user_timeline(db, user, limit, before=None):
    """Return a user's newest unflagged messages."""
    return _timeline(db, {"author_id": user["_id"]}, limit, before)


def home_timeline(db, user, limit, before=None):
    """Return the newest messages of a user and of those it follows."""
    authors = [user["_id"], *user.get("follows", [])]
    return _timeline(db, {"author_id": {"$in": authors}}, limit, before)


def _timeline(db, query, limit, before):
    """Return messages matching query, newest first, older than before."""
    if limit <= 0:
        return []  # NOTE: MongoDB reads limit(0) as "no limit".

    query = {**query, "flagged": False}
    if before is not None:
        query["seq"] = {"$lt": before}

    cursor = (db.messages.find(query, MESSAGE_FIELDS)
              .sort("seq", DESCENDING).limit(limit))
    return list(cursor)


# The simulator's position --------------------------------------------------

def get_latest(db):
    """Return the last action id the simulator sent, or -1."""
    doc = db.meta.find_one({"_id": "latest"})
    return -1 if doc is None else doc["value"]


def set_latest(db, value):
    """Record the action id the simulator sent last."""
    db.meta.update_one({"_id": "latest"}, {"$set": {"value": value}},
                       upsert=True)


# Sessions ------------------------------------------------------------------

def create_session(db, token_hash, user_id, expires):
    """Record a signed-in session under the hash of its token."""
    db.sessions.insert_one({"_id": token_hash, "user_id": user_id,
                            "expires": expires})


def session_user_id(db, token_hash, now):
    """Return the user id of a live session, or None."""
    doc = db.sessions.find_one({"_id": token_hash})
    if doc is None or _naive(doc["expires"]) <= _naive(now):
        return None
    return doc["user_id"]


def delete_session(db, token_hash):
    """End a session."""
    db.sessions.delete_one({"_id": token_hash})


def _naive(moment):
    """Return a UTC datetime without tzinfo; MongoDB hands back naive ones."""
    return moment.replace(tzinfo=None)


def ping(db):
    """Raise unless the database answers."""
    db.command("ping")
