"""The deployment's ledger: append-only JSON lines, each record hash-chained to the one before
(its `prev` is that record's `hash`, its own `hash` the SHA-256 of its canonical JSON without
it), optionally signed with a key the hospital holds (Ed25519). Editing, deleting or reordering
any record breaks the chain at that record, which `verify` names."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from medunlearn.config import MissingExtra, UserError
from medunlearn.store import atomic_write_text

GENESIS = "0" * 64


class LedgerError(UserError):
    """A ledger that does not chain, or a record that cannot be appended."""


def canonical(record: dict) -> bytes:
    """The bytes a record's hash covers: its JSON with sorted keys, without `hash` and
    `signature`."""
    body = {k: v for k, v in record.items() if k not in ("hash", "signature")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def record_hash(record: dict) -> str:
    """The SHA-256 of a record's canonical JSON."""
    return hashlib.sha256(canonical(record)).hexdigest()


def versions() -> dict[str, str]:
    """The versions of medunlearn and torch, for the records."""
    try:
        medunlearn = version("medunlearn")
    except PackageNotFoundError:
        medunlearn = "unknown"
    return {"medunlearn": medunlearn, "torch": torch.__version__}


def _signer(key_path: Path | None):
    """An Ed25519 private key read from a PEM file (the `sign` extra), or None."""
    if key_path is None:
        return None
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError:
        raise MissingExtra(
            "signing the ledger needs cryptography: pip install -e '.[sign]'"
        ) from None
    return load_pem_private_key(Path(key_path).read_bytes(), password=None)


def _public_key(key_path: Path):
    """An Ed25519 public key from a PEM file."""
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        raise MissingExtra(
            "checking signatures needs cryptography: pip install -e '.[sign]'"
        ) from None
    return load_pem_public_key(Path(key_path).read_bytes())


@dataclass
class Ledger:
    """The records of one ledger file, in order."""

    path: Path
    records: list[dict]

    @classmethod
    def read(cls, path: Path) -> Ledger:
        """A ledger file's records (an absent file: none)."""
        path = Path(path)
        if not path.is_file():
            return cls(path, [])
        records = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise LedgerError(f"{path}: line {number} is not a JSON record") from None
        return cls(path, records)

    @property
    def head(self) -> dict | None:
        """The last record."""
        return self.records[-1] if self.records else None

    def prepared(self, entry: dict[str, Any]) -> dict:
        """The record `entry` becomes when appended next (its index, prev and hash), unsigned."""
        record = {"index": len(self.records), "prev": self.head["hash"] if self.head else GENESIS,
                  **entry}  # fmt: skip
        return {**record, "hash": record_hash(record)}

    def appended(self, entry: dict[str, Any], key_path: Path | None = None) -> Ledger:
        """The ledger with one more record, chained to the last (signed with the key at
        `key_path` when given); written atomically, so a stop leaves the old ledger or the
        new one whole."""
        record = self.prepared(entry)
        signer = _signer(key_path)
        if signer is not None:
            record["signature"] = base64.b64encode(signer.sign(canonical(record))).decode()
        lines = [json.dumps(r, sort_keys=True, default=str) for r in [*self.records, record]]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        return Ledger(self.path, [*self.records, record])

    def verify(self, public_key: Path | None = None) -> list[str]:
        """The chain's problems, each naming its record ([] when it holds): a record whose hash
        is not its content's, whose `prev` is not the hash of the record before, whose index
        is out of order, or (with a public key) whose signature does not match."""
        problems, prev = [], GENESIS
        key = _public_key(public_key) if public_key is not None else None
        for position, record in enumerate(self.records):
            name = f"record {position} ({record.get('kind', '?')}, {record.get('time', '?')})"
            if record.get("index") != position:
                problems.append(f"{name}: its index is {record.get('index')} (moved or removed)")
            if record.get("prev") != prev:
                problems.append(f"{name}: it does not follow the record before it")
            if record.get("hash") != record_hash(record):
                problems.append(f"{name}: its content does not match its hash (edited)")
            if key is not None and not _signed(key, record):
                problems.append(f"{name}: its signature does not match")
            prev = record.get("hash")
        return problems

    def of_kind(self, *kinds: str) -> Iterable[dict]:
        """The records of the given kinds, in order."""
        return (record for record in self.records if record.get("kind") in kinds)


def _signed(key, record: dict) -> bool:
    """Whether a record's signature is the key's over its canonical JSON."""
    from cryptography.exceptions import InvalidSignature

    signature = record.get("signature")
    if signature is None:
        return False
    try:
        key.verify(base64.b64decode(signature), canonical(record))
    except InvalidSignature:
        return False
    return True
