"""Password hashing: Argon2id for new hashes, legacy Werkzeug hashes read."""

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# NOTE: OWASP's minimum for Argon2id (19 MiB, 2 passes). It costs about
# 20 ms, which keeps registration well inside the simulator's 0.3 s.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password):
    """Return a salted Argon2id hash whose parameters live in the string."""
    return _hasher.hash(password)


def check_password(stored, password):
    """Return whether the password matches the stored hash of any kind."""
    if stored.startswith("$argon2"):
        try:
            return _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    if stored.startswith(("scrypt:", "pbkdf2:")):
        return _check_werkzeug(stored, password)
    return False


def needs_upgrade(stored):
    """Return whether the hash should be replaced on the next sign-in."""
    if not stored.startswith("$argon2"):
        return True
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _check_werkzeug(stored, password):
    """Check a Werkzeug `method$salt$hex` hash, as the original app made."""
    try:
        method, salt, expected = stored.split("$", 2)
        digest = _werkzeug_digest(method, salt.encode(), password.encode())
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


def _werkzeug_digest(method, salt, password):
    """Return the digest that a Werkzeug method string describes."""
    name, *params = method.split(":")
    if name == "scrypt":
        n, r, p = (int(x) for x in params)
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p,
                              maxmem=132 * n * r * p, dklen=64)
    if name == "pbkdf2":
        algorithm, iterations = params[0], int(params[1])
        return hashlib.pbkdf2_hmac(algorithm, password, salt, iterations)
    raise ValueError(f"unknown hash method {name}")
