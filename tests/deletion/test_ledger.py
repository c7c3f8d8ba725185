"""The ledger: a hash chain that names the record where any edit, deletion, reordering or
changed hash breaks it; atomic appends; Ed25519 signatures; `prepared` is what gets written."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from medunlearn.deletion.ledger import GENESIS, Ledger, LedgerError, record_hash

ENTRIES = [
    {"kind": "deploy", "time": "2026-01-01T00:00:00+00:00", "output": "a" * 64, "exact": True},
    {"kind": "protocol", "time": "2026-01-02T00:00:00+00:00", "method": "ft", "validated": True,
     "criteria": {"forget_gap": 3.5}},
    {"kind": "delete", "time": "2026-01-03T00:00:00+00:00", "method": "ft", "n_images": 4,
     "params": {"epochs": 1}, "gate": {"released": True, "checks": []}, "output": "b" * 64},
    {"kind": "delete", "time": "2026-01-04T00:00:00+00:00", "method": "retrain", "n_images": 2,
     "output": "c" * 64, "exact": True},
]  # fmt: skip


def _chain(path: Path, key: Path | None = None) -> Ledger:
    """A ledger of the four ENTRIES, appended one by one (signed with `key` where given)."""
    ledger = Ledger.read(path)
    for entry in ENTRIES:
        ledger = ledger.appended(entry, key)
    return ledger


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _rewrite(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def _problems(path: Path, public_key: Path | None = None) -> list[str]:
    return Ledger.read(path).verify(public_key)


def _changed(value):
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, str):
        return value[:-1] + ("0" if value[-1] != "0" else "1")
    if isinstance(value, dict):
        return {**value, "added": 1}
    return [*value, 1]


def test_a_chain_of_records_verifies(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = _chain(path)
    assert ledger.verify() == []
    records = _lines(path)
    assert [r["index"] for r in records] == [0, 1, 2, 3]
    assert records[0]["prev"] == GENESIS
    assert all(r["prev"] == before["hash"] for before, r in itertools.pairwise(records))
    assert all(r["hash"] == record_hash(r) for r in records)
    assert Ledger.read(path).records == ledger.records
    assert Ledger.read(tmp_path / "absent.jsonl").records == []


@pytest.mark.parametrize("position", [0, 2, 3])
def test_editing_any_field_names_the_record(tmp_path, position):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    original = _lines(path)
    for field in original[position]:
        records = [dict(r) for r in original]
        records[position][field] = _changed(records[position][field])
        _rewrite(path, records)
        problems = _problems(path)
        assert problems, f"editing {field} of record {position} went unnoticed"
        assert problems[0].startswith(f"record {position} "), (field, problems)


def test_editing_a_nested_value_names_the_record(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    records = _lines(path)
    records[2]["gate"]["released"] = False
    _rewrite(path, records)
    assert _problems(path) == [
        "record 2 (delete, 2026-01-03T00:00:00+00:00): its content does not match its hash (edited)"
    ]


@pytest.mark.parametrize("position", [0, 1, 2])
def test_deleting_a_record_names_the_one_after(tmp_path, position):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    records = _lines(path)
    del records[position]
    _rewrite(path, records)
    problems = _problems(path)
    named = [p for p in problems if p.startswith(f"record {position} ")]
    assert problems[: len(named)] == named  # the first problem is at the gap
    assert any("moved or removed" in p for p in named)
    assert any("does not follow the record before it" in p for p in named)
    assert not any(p.startswith(f"record {n} ") for n in range(position) for p in problems)


def test_reordering_two_records_names_them(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    records = _lines(path)
    records[1], records[2] = records[2], records[1]
    _rewrite(path, records)
    problems = _problems(path)
    assert problems[0].startswith("record 1 (delete, 2026-01-03")
    assert {p.split(" (")[0] for p in problems} == {"record 1", "record 2", "record 3"}


def test_changing_a_hash_names_the_record_and_breaks_the_next(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    records = _lines(path)
    records[1]["hash"] = "f" * 64
    _rewrite(path, records)
    assert _problems(path) == [
        "record 1 (protocol, 2026-01-02T00:00:00+00:00): its content does not match its hash "
        "(edited)",
        "record 2 (delete, 2026-01-03T00:00:00+00:00): it does not follow the record before it",
    ]


def test_a_rehashed_edit_still_breaks_the_chain_after_it(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    records = _lines(path)
    records[1]["validated"] = False
    records[1]["hash"] = record_hash(records[1])
    _rewrite(path, records)
    problems = _problems(path)
    assert len(problems) == 1 and problems[0].startswith("record 2 ")


def test_a_line_that_is_not_json_is_named(tmp_path):
    path = tmp_path / "ledger.jsonl"
    _chain(path)
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(LedgerError, match="line 5 is not a JSON record"):
        Ledger.read(path)


def test_prepared_is_what_appended_writes(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = _chain(path)
    entry = {"kind": "delete", "time": "2026-02-01T00:00:00+00:00", "method": "ft", "ta": 81.25}
    prepared = ledger.prepared(entry)
    assert prepared["index"] == 4 and prepared["prev"] == ledger.head["hash"]
    after = ledger.appended(entry)
    assert after.head == prepared
    assert Ledger.read(path).head == prepared
    assert ledger.records == after.records[:-1]  # the old ledger object is unchanged


def test_a_failing_append_leaves_the_old_ledger(tmp_path, monkeypatch):
    path = tmp_path / "ledger.jsonl"
    ledger = _chain(path)
    before = path.read_bytes()
    real = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ledger.appended({"kind": "delete", "time": "2026-02-01T00:00:00+00:00"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]  # no temporary left
    assert Ledger.read(path).verify() == []


# --- signatures -------------------------------------------------------------------------------


@pytest.fixture
def keys(tmp_path) -> tuple[Path, Path]:
    """A fresh Ed25519 key pair as PEM files: (private, public)."""
    pytest.importorskip("cryptography")
    return _key_pair(tmp_path)


def _key_pair(folder: Path) -> tuple[Path, Path]:
    """A new Ed25519 key pair written as PEM files in `folder`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = folder / "hospital.pem", folder / "hospital.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return private, public


def test_signed_records_verify_with_the_public_key(tmp_path, keys):
    private, public = keys
    path = tmp_path / "ledger.jsonl"
    ledger = _chain(path, private)
    assert all("signature" in r for r in ledger.records)
    assert Ledger.read(path).verify(public) == []
    assert Ledger.read(path).verify() == []  # the chain alone holds too


def test_a_tampered_signature_fails(tmp_path, keys):
    private, public = keys
    path = tmp_path / "ledger.jsonl"
    _chain(path, private)
    records = _lines(path)
    records[2]["signature"] = records[1]["signature"]  # a genuine signature, of another record
    _rewrite(path, records)
    assert _problems(path) == []  # the signature is outside the hash: only the key tells
    assert _problems(path, public) == [
        "record 2 (delete, 2026-01-03T00:00:00+00:00): its signature does not match"
    ]


def test_a_tampered_record_fails_its_signature(tmp_path, keys):
    private, public = keys
    path = tmp_path / "ledger.jsonl"
    _chain(path, private)
    records = _lines(path)
    records[3]["method"] = "ft"
    records[3]["hash"] = record_hash(records[3])  # the chain is mended: the last record
    _rewrite(path, records)
    assert _problems(path) == []
    assert _problems(path, public) == [
        "record 3 (delete, 2026-01-04T00:00:00+00:00): its signature does not match"
    ]


def test_an_unsigned_record_fails(tmp_path, keys):
    private, public = keys
    path = tmp_path / "ledger.jsonl"
    ledger = _chain(path, private)
    ledger.appended({"kind": "delete", "time": "2026-02-01T00:00:00+00:00"})  # not signed
    assert _problems(path, public) == [
        "record 4 (delete, 2026-02-01T00:00:00+00:00): its signature does not match"
    ]


def test_another_keys_signatures_fail(tmp_path, keys):
    private, _ = keys
    path = tmp_path / "ledger.jsonl"
    _chain(path, private)
    other = tmp_path / "other"
    other.mkdir()
    _, stranger = _key_pair(other)
    problems = _problems(path, stranger)
    assert [p.split(" (")[0] for p in problems] == [f"record {i}" for i in range(4)]
