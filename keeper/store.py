"""The keeper's sqlite state: account replicas, the last processed block
(number + hash, with recent hashes for reorg detection) and in-flight
transactions.

Integers above 2**63 (shares, words, wei) are stored as decimal text.
Each processed block is committed in one sqlite transaction (accounts
changed in it + the new last block), so a crash leaves the store at a block
boundary. In-flight transactions are written and committed BEFORE they are
broadcast (see dispatcher), so a kill -9 between send and receipt never loses
a nonce nor sends twice.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    owner TEXT NOT NULL,
    sub_id INTEGER NOT NULL,
    header TEXT NOT NULL,
    positions TEXT NOT NULL,
    PRIMARY KEY (owner, sub_id)
);
CREATE TABLE IF NOT EXISTS txs (
    nonce INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    account TEXT,
    status TEXT NOT NULL,
    raw TEXT NOT NULL,
    hash TEXT NOT NULL,
    hashes TEXT NOT NULL,
    max_fee TEXT NOT NULL,
    tip TEXT NOT NULL,
    gas_limit INTEGER NOT NULL,
    expected_profit_wei TEXT NOT NULL,
    sent_block INTEGER NOT NULL,
    bumps INTEGER NOT NULL DEFAULT 0,
    payload TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

PENDING = "pending"  # broadcast (or about to be), no receipt for this nonce yet
MINED = "mined"  # a tx with this nonce is in the chain and it is ours
LOST = "lost"  # mined but reverted / nonce consumed by a cancel: the liquidation did not happen
DROPPED = "dropped"  # never accepted by the node (insufficient funds...): nonce released


@dataclass
class TxRecord:
    """One nonce slot of the dispatcher. Amounts in wei, text in the db."""

    nonce: int
    kind: str  # "liquidation" | "cancel"
    account: str | None  # "owner:sub_id" of the liquidated account
    status: str
    raw: str  # latest signed raw transaction (0x-hex)
    hash: str  # its hash
    hashes: list[str]  # every hash ever broadcast for this nonce (replacements)
    max_fee: int
    tip: int
    gas_limit: int
    expected_profit_wei: int
    sent_block: int  # block of the last (re)broadcast
    bumps: int = 0
    payload: dict = field(default_factory=dict)  # the liquidation call (for re-simulation, logs)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


class Store:
    """sqlite store (``":memory:"`` for an in-process throw-away one)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        version = self.get_meta("schema_version")
        if version is None:
            self.set_meta("schema_version", str(SCHEMA_VERSION))
        elif int(version) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    # -- meta -------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def identity(self) -> tuple[int | None, str | None]:
        """(chain id, engine address) the store was built for."""
        cid = self.get_meta("chain_id")
        return (int(cid) if cid is not None else None, self.get_meta("engine"))

    def set_identity(self, chain_id: int, engine: str) -> None:
        self.set_meta("chain_id", str(chain_id))
        self.set_meta("engine", engine.lower())

    # -- blocks -------------------------------------------------------------------
    def last_block(self) -> tuple[int, str] | None:
        """(number, hash) of the last fully processed block, or None."""
        n = self.get_meta("last_block")
        h = self.get_meta("last_hash")
        return None if n is None or h is None else (int(n), h)

    def block_hash(self, number: int) -> str | None:
        row = self.db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return None if row is None else row[0]

    def recent_blocks(self) -> dict[int, str]:
        return dict(self.db.execute("SELECT number, hash FROM blocks").fetchall())

    # -- accounts -----------------------------------------------------------------
    def load_accounts(self) -> list[tuple[str, int, int, dict[int, tuple[int, int]]]]:
        """Every stored account: (owner, sub_id, header word, {asset id: (deposit shares, borrow shares)})."""
        out = []
        for owner, sub_id, header, positions in self.db.execute("SELECT owner, sub_id, header, positions FROM accounts"):
            pos = {int(k): (int(v[0]), int(v[1])) for k, v in json.loads(positions).items()}
            out.append((owner, int(sub_id), int(header), pos))
        return out

    def commit_block(
        self,
        number: int,
        block_hash: str,
        accounts: Iterable[tuple[str, int, int, dict[int, tuple[int, int]]]],
        keep_blocks: int,
        *,
        replace_all: bool = False,
    ) -> None:
        """Atomically stores changed accounts and the new last block (and
        drops block hashes older than ``keep_blocks``). ``replace_all``
        clears the account table first (full resync)."""
        rows = [
            (owner, sub_id, str(header), json.dumps({str(k): [str(d), str(b)] for k, (d, b) in pos.items()}))
            for owner, sub_id, header, pos in accounts
        ]
        with self._tx():
            if replace_all:
                self.db.execute("DELETE FROM accounts")
                self.db.execute("DELETE FROM blocks")
            self.db.executemany(
                "INSERT OR REPLACE INTO accounts (owner, sub_id, header, positions) VALUES (?, ?, ?, ?)", rows
            )
            self.db.execute("INSERT OR REPLACE INTO blocks (number, hash) VALUES (?, ?)", (number, block_hash))
            self.db.execute("DELETE FROM blocks WHERE number <= ? OR number > ?", (number - keep_blocks, number))
            self.set_meta("last_block", str(number))
            self.set_meta("last_hash", block_hash)

    def reset(self) -> None:
        """Forgets accounts and blocks (a full resync follows). Keeps txs."""
        with self._tx():
            self.db.execute("DELETE FROM accounts")
            self.db.execute("DELETE FROM blocks")
            self.db.execute("DELETE FROM meta WHERE key IN ('last_block', 'last_hash')")

    def account_count(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM accounts").fetchone()[0])

    # -- transactions -----------------------------------------------------------
    def save_tx(self, tx: TxRecord) -> None:
        """Inserts or replaces the nonce slot, committed before returning."""
        self.save_txs([tx])

    def save_txs(self, txs: list[TxRecord]) -> None:
        """Inserts or replaces nonce slots in one committed transaction."""
        now = time.time()
        with self._tx():
            for tx in txs:
                tx.updated_at = now
                self._save(tx)

    def _save(self, tx: TxRecord) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO txs (nonce, kind, account, status, raw, hash, hashes, max_fee, tip, gas_limit,"
            " expected_profit_wei, sent_block, bumps, payload, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                tx.nonce, tx.kind, tx.account, tx.status, tx.raw, tx.hash, json.dumps(tx.hashes), str(tx.max_fee),
                str(tx.tip), tx.gas_limit, str(tx.expected_profit_wei), tx.sent_block, tx.bumps,
                json.dumps(tx.payload), tx.created_at, tx.updated_at,
            ),
        )

    def txs(self, status: str | None = None) -> list[TxRecord]:
        q = "SELECT nonce, kind, account, status, raw, hash, hashes, max_fee, tip, gas_limit, expected_profit_wei," \
            " sent_block, bumps, payload, created_at, updated_at FROM txs"
        args: tuple = ()
        if status is not None:
            q += " WHERE status = ?"
            args = (status,)
        out = []
        for r in self.db.execute(q + " ORDER BY nonce", args):
            out.append(
                TxRecord(
                    nonce=r[0], kind=r[1], account=r[2], status=r[3], raw=r[4], hash=r[5], hashes=json.loads(r[6]),
                    max_fee=int(r[7]), tip=int(r[8]), gas_limit=r[9], expected_profit_wei=int(r[10]), sent_block=r[11],
                    bumps=r[12], payload=json.loads(r[13]), created_at=r[14], updated_at=r[15],
                )
            )
        return out

    def _tx(self) -> "_Transaction":
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
