"""Configuration read from the environment, with safe defaults."""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    """Settings that the apps and the server need."""

    port: int = 8080
    host: str = "127.0.0.1"
    mongo_uri: str | None = None
    db_name: str = "minitwit"
    data_dir: Path = ROOT / "data"
    secret_key: str = ""
    secure_cookies: bool = False


def from_env(env=os.environ):
    """Return the configuration that the environment describes."""
    data_dir = Path(env.get("MINITWIT_DATA_DIR") or ROOT / "data")

    return Config(
        port=int(env.get("PORT", "8080")),
        host=env.get("MINITWIT_HOST", "127.0.0.1"),
        mongo_uri=env.get("MINITWIT_MONGO_URI") or None,
        db_name=env.get("MINITWIT_DB_NAME", "minitwit"),
        data_dir=data_dir,
        secret_key=(env.get("MINITWIT_SECRET_KEY")
                    or stored_secret_key(data_dir)),
        secure_cookies=env.get("MINITWIT_SECURE_COOKIES", "") == "1",
    )


def stored_secret_key(data_dir):
    """Return the secret key kept in the data directory, made on first use."""
    path = Path(data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"secret_key.{os.getpid()}")
    tmp.write_text(secrets.token_hex(32) + "\n")
    tmp.chmod(0o600)

    # NOTE: link() fails if the key exists, so two workers starting at once
    # agree on one key and neither reads a half-written file.
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
