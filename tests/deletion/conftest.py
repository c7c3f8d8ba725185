"""Fixtures shared by the deletion service's tests."""

from __future__ import annotations

import pytest
import yaml

from medunlearn.config import DeletionConfig, ProtocolConfig, to_dict
from medunlearn.experiment import export_original


@pytest.fixture
def checkpoint(make_config, tmp_path):
    """A tiny original model."""
    path, _ = export_original(make_config(), tmp_path / "model")
    return path


@pytest.fixture
def settings(tmp_path):
    """Deletion settings whose protocol a tiny model can pass."""
    protocol = ProtocolConfig(requests=2, size=6, bank=3, repeats=3, attack_gap=1.0, ulira=1.0,
                              ain=0.0)  # fmt: skip
    path = tmp_path / "deletion.yaml"
    path.write_text(yaml.safe_dump({"deletion": to_dict(DeletionConfig(protocol=protocol))}))
    return path
