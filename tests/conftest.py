"""Shared fixtures: tiny teachers built in code, a tiny student zoo, and an isolated ONNX cache."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_ZOO = {
    "half_layers": 'description = "half the layers"\ngroup = "paper"\nlayers = 0.5\n',
    "two_heads": 'description = "half the heads, wider"\ngroup = "paper"\nheads = "1/2"\n',
    "two_heads_pruned": 'description = "half the heads, teacher width"\ngroup = "pruned"\nheads = "1/2"\n'
                        'head_dim = "teacher"\n',
    "narrow": 'description = "half the hidden"\ngroup = "paper"\nhidden = 0.5\nffn = "4x"\n',
}


def tiny_config(model_type: str = "bert"):
    """A 4-layer, 4-head, 32-wide encoder config: builds in milliseconds."""
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, vocab_size=120, hidden_size=32, num_hidden_layers=4,
                                num_attention_heads=4, intermediate_size=64, max_position_embeddings=80,
                                type_vocab_size=2 if model_type == "bert" else 1, pad_token_id=1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test session exports ONNX into its own cache folder, never the user's."""
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "kdbench-cache"))


@pytest.fixture
def tiny_teacher(tmp_path) -> Path:
    """A local model folder holding only the config of a tiny BERT teacher."""
    folder = tmp_path / "tiny-bert"
    tiny_config("bert").save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_zoo(tmp_path) -> Path:
    """A students folder with four tiny students (layers, heads, pruned heads, hidden)."""
    folder = tmp_path / "students"
    folder.mkdir()
    for name, body in TINY_ZOO.items():
        (folder / f"{name}.toml").write_text(f'name = "{name}"\n{body}')
    return folder
