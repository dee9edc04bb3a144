"""The keeper's signing key: an encrypted JSON keystore (geth / eth-account
format) or an ape account alias (``~/.ape/accounts/<alias>.json``, the same
format), decrypted with a password read from an environment variable.

A raw private key is never accepted from the config and never logged: the
decrypted key lives only inside the eth-account ``LocalAccount``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .config import AccountSettings
from .errors import KeyLoadError


def ape_accounts_dir() -> Path:
    """ape's account folder: $APE_DATA_FOLDER/accounts or ~/.ape/accounts."""
    base = os.environ.get("APE_DATA_FOLDER")
    return (Path(base) if base else Path.home() / ".ape") / "accounts"


def keystore_path(settings: AccountSettings) -> Path:
    """The keystore file the settings point at. Raises :class:`KeyLoadError`
    when neither source is configured."""
    if settings.keystore is not None:
        return Path(settings.keystore)
    if settings.ape_alias is not None:
        return ape_accounts_dir() / f"{settings.ape_alias}.json"
    raise KeyLoadError("account: set account.keystore or account.ape_alias (or run with strategy.dry_run = true)")


def load_account(settings: AccountSettings) -> LocalAccount:
    """Decrypts the configured keystore with the password from
    ``os.environ[settings.password_env]``. Raises :class:`KeyLoadError`
    (missing file, unset variable, wrong password, bad file)."""
    path = keystore_path(settings)
    if not path.is_file():
        what = f"ape alias {settings.ape_alias!r}" if settings.ape_alias else "keystore"
        raise KeyLoadError(f"account: {what} file not found: {path}")
    password = os.environ.get(settings.password_env)
    if password is None:
        raise KeyLoadError(f"account: environment variable {settings.password_env} (keystore password) is not set")
    try:
        keyfile = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise KeyLoadError(f"account: {path} is not a JSON keystore: {exc.__class__.__name__}") from None
    try:
        key = Account.decrypt(keyfile, password)
    except ValueError:
        raise KeyLoadError(f"account: wrong password for {path} (from {settings.password_env})") from None
    except Exception as exc:  # malformed keystore fields
        raise KeyLoadError(f"account: cannot decrypt {path}: {exc.__class__.__name__}") from None
    account = Account.from_key(key)
    del key
    return account


def write_keystore(private_key: str | bytes, password: str, path: Path, *, iterations: int = 2) -> str:
    """Writes an encrypted keystore (pbkdf2 with ``iterations`` rounds: the
    default is cheap, for tests and local chains only). Returns the address.
    Production keys come from ``ape accounts generate`` / ``geth account new``."""
    keyfile = Account.encrypt(private_key, password, kdf="pbkdf2", iterations=iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(keyfile), encoding="utf8")
    return Account.from_key(private_key).address
