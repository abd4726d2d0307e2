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

    return AutoConfig.for_model(
        model_type,
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=80,
        type_vocab_size=2 if model_type == "bert" else 1,
        pad_token_id=1,
    )


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


# ------------------------------------------------------------------------------------------ tiny GLUE and teachers
WORDS = (
    "the cat dog sat ran on a mat big small red blue is not good bad movie film was very it and "
    "a man woman plays guitar piano runs walks"
).split()


def _sentences(n: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(n)]


def write_parquet_glue(root: Path, n_train: int = 24, n_eval: int = 12) -> Path:
    """<root>/<task>/<split>.parquet for rte (pairs), cola (single) and stsb (regression), hub column names."""
    import pandas as pd

    for task, pairs, regression in (("rte", True, False), ("cola", False, False), ("stsb", True, True)):
        (root / task).mkdir(parents=True, exist_ok=True)
        for split, n, seed in (("train", n_train, 1), ("validation", n_eval, 2)):
            cols = (
                {"sentence1": _sentences(n, seed), "sentence2": _sentences(n, seed + 10)}
                if pairs
                else {"sentence": _sentences(n, seed)}
            )
            labels = [(i * 7 % 11) / 2.0 for i in range(n)] if regression else [i % 2 for i in range(n)]
            pd.DataFrame({**cols, "label": labels, "idx": range(n)}).to_parquet(root / task / f"{split}.parquet")
    return root


def write_tsv_glue(root: Path, n_train: int = 24, n_eval: int = 12) -> Path:
    """The classic glue_data layout for RTE (header, string labels) and CoLA (no header)."""
    (root / "RTE").mkdir(parents=True, exist_ok=True)
    (root / "CoLA").mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 3), ("dev", n_eval, 4)):
        s1, s2 = _sentences(n, seed), _sentences(n, seed + 10)
        rows = ["index\tsentence1\tsentence2\tlabel"] + [
            f"{i}\t{a}\t{b}\t{'entailment' if i % 2 == 0 else 'not_entailment'}"
            for i, (a, b) in enumerate(zip(s1, s2, strict=True))
        ]
        (root / "RTE" / f"{split}.tsv").write_text("\n".join(rows) + "\n")
        cola = [f"src\t{i % 2}\t\t{s}" for i, s in enumerate(_sentences(n, seed + 20))]
        (root / "CoLA" / f"{split}.tsv").write_text("\n".join(cola) + "\n")
    return root


def write_tiny_teacher(folder: Path, model_type: str = "bert", layers: int = 4) -> Path:
    """A tiny pretrained-style teacher folder (random weights) with a WordPiece tokenizer built from WORDS."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=72,
        type_vocab_size=2,
        pad_token_id=0,
    )  # the BERT tokenizer emits segment ids
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def glue_parquet(tmp_path) -> Path:
    return write_parquet_glue(tmp_path / "glue")


@pytest.fixture
def glue_tsv(tmp_path) -> Path:
    return write_tsv_glue(tmp_path / "glue_data")


@pytest.fixture
def bert_teacher(tmp_path) -> Path:
    return write_tiny_teacher(tmp_path / "bert-teacher", "bert")


@pytest.fixture
def roberta_teacher(tmp_path) -> Path:
    return write_tiny_teacher(tmp_path / "roberta-teacher", "roberta")
