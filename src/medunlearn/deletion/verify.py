"""Checking a deployment's records without serving it: the ledger's chain (and signatures),
and every file a record names that is still kept (checkpoints, protocols, the requests' ids)
against the hash the record holds."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medunlearn.deletion.deployment import (
    CHECKPOINTS,
    FORGOTTEN,
    LEDGER,
    PROTOCOLS,
    DeploymentError,
    checkpoint_sharding,
)
from medunlearn.deletion.ledger import Ledger
from medunlearn.deletion.requests import digest
from medunlearn.sharding import slice_problems
from medunlearn.store import file_sha256


@dataclass
class Report:
    """What `verify` found: lines to print, and whether everything held."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True

    def problem(self, line: str) -> None:
        """A finding that breaks the verification."""
        self.lines.append(f"FAILED: {line}")
        self.ok = False


def _ledger(folder: Path) -> Ledger:
    """A deployment's ledger, or a clear error for a folder that is none."""
    ledger = Ledger.read(Path(folder) / LEDGER)
    if not ledger.records:
        raise DeploymentError(f"{folder} holds no ledger: is it a deployment?")
    return ledger


def _named_files(folder: Path, record: dict) -> list[tuple[Path, str]]:
    """The files a record names with the hash they must have (a deployment's input is the
    user's checkpoint, outside the folder: its hash is provenance, not a file kept here)."""
    keys = ("output",) if record.get("kind") == "deploy" else ("input", "output")
    files = [(folder / CHECKPOINTS / f"{record[k]}.safetensors", record[k])
             for k in keys if k in record]  # fmt: skip
    if "protocol" in record and record.get("kind") == "protocol":
        files.append((folder / PROTOCOLS / f"{record['protocol']}.json", record["protocol"]))
    return files


def verify(folder: str | Path, public_key: str | Path | None = None) -> Report:
    """Verify a deployment's ledger and the files it names (purged ones are reported as such)."""
    folder = Path(folder)
    ledger, report = _ledger(folder), Report()
    for problem in ledger.verify(Path(public_key) if public_key else None):
        report.problem(problem)
    purged = {item["sha256"] for r in ledger.records for item in r.get("purged", [])
              if item["what"] == "checkpoint"}  # fmt: skip
    checked, sharded_checked = 0, set()
    for record in ledger.records:
        for path, expected in _named_files(folder, record):
            if not path.is_file():
                if expected not in purged and path.parent.name != PROTOCOLS:
                    report.problem(f"record {record['index']}: {path.name} is missing (not purged)")
                continue
            if file_sha256(path) != expected:
                report.problem(f"record {record['index']}: {path.name} does not match its hash")
                continue
            checked += 1
            if path.parent.name == CHECKPOINTS and path not in sharded_checked:
                sharded_checked.add(path)
                checked += _check_slices(path, record["index"], report)
        if record.get("kind") == "delete":
            ids_path = folder / FORGOTTEN / f"{record['forget_digest']}.json"
            if ids_path.is_file() and digest(_ids(ids_path)) != record["forget_digest"]:
                report.problem(f"record {record['index']}: its ids file does not match its digest")
    if report.ok:
        report.lines.append(f"ledger OK: {len(ledger.records)} records chained, {checked} file(s) "
                            f"match their hashes, {len(purged)} checkpoint(s) purged")  # fmt: skip
    return report


def _check_slices(checkpoint: Path, index: int, report: Report) -> int:
    """Check the slice checkpoints a (verified) sharded checkpoint names against their hashes
    (the check a deletion makes before it restarts from them); how many matched."""
    sharding = checkpoint_sharding(checkpoint)
    if sharding is None:
        return 0
    problems = slice_problems(sharding)
    for problem in problems:
        report.problem(f"record {index}: {problem} (named by {checkpoint.name})")
    return sum(len(shard) for shard in sharding.checkpoints) - len(problems)


def _ids(path: Path) -> np.ndarray:
    """The ids saved in a request's ids file."""
    return np.array(json.loads(path.read_text())["ids"], dtype=np.int64)


def summary(folder: str | Path) -> list[str]:
    """One line per record: index, time, kind, what it did."""
    lines = []
    for record in _ledger(Path(folder)).records:
        kind = record.get("kind")
        text = f"{record['index']:>3}  {record.get('time', '?')}  {kind:<8}"
        if kind == "delete":
            text += (f" request {record['request']}: {record['n_images']} image(s), "
                     f"{record['method']}, {record['decision']}")  # fmt: skip
        elif kind == "protocol":
            text += (
                f" {record['method']}: {'validated' if record['validated'] else 'not validated'}"
            )
        if "output" in record:
            text += f"  -> {record['output'][:16]}"
        lines.append(text + f"  [{record['hash'][:12]}]")
    return lines
