"""The teacher's shape: roberta-base embedded (no download), or any hub id / local folder via AutoConfig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdbench.core.errors import KdbenchError

DEFAULT_TEACHER = "roberta-base"


# roberta-base's config.json as published on the hub, so `kdbench profile` runs with no network.
ROBERTA_BASE_CONFIG: dict[str, Any] = {
    "architectures": ["RobertaForMaskedLM"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 514,
    "model_type": "roberta",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 1,
    "type_vocab_size": 1,
    "vocab_size": 50265,
}


EMBEDDED = {DEFAULT_TEACHER: ROBERTA_BASE_CONFIG, "FacebookAI/roberta-base": ROBERTA_BASE_CONFIG}


@dataclass(frozen=True)
class TeacherShape:
    """The four numbers a student file is relative to, plus where they came from."""

    name: str  # hub id or local folder the config came from
    model_type: str  # transformers model_type, e.g. "roberta", "bert", "mpnet"
    layers: int  # num_hidden_layers
    heads: int  # num_attention_heads
    hidden: int  # hidden_size
    ffn: int  # intermediate_size

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden // self.heads


def looks_local(name: str) -> bool:
    """Whether a model name can only mean a folder (absolute, ./ ../ or ~/): one that does not exist is then a
    missing folder, not a hub id to look up."""
    return name.startswith(("/", "./", "../", "~")) or name in (".", "..")


def load_teacher_config(name: str = DEFAULT_TEACHER):
    """Return a transformers PretrainedConfig for `name` (embedded, local folder, or hub id)."""
    from transformers import AutoConfig

    if name in EMBEDDED:
        cfg = dict(EMBEDDED[name])
        return AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    path = Path(name)
    if looks_local(name) and not path.exists():
        raise KdbenchError(f"teacher folder {path} does not exist; pass a Hugging Face model folder or hub id")
    if path.exists() and not (path / "config.json").is_file():
        raise KdbenchError(f"teacher folder {path} has no config.json; pass a Hugging Face model folder or hub id")
    try:
        return AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KdbenchError(
            f"cannot load the config of teacher {name!r} ({first}); pass a local model folder or a reachable hub id"
        ) from None


def teacher_shape(config, name: str) -> TeacherShape:
    """Read the encoder shape out of a transformers config."""
    try:
        return TeacherShape(
            name=name,
            model_type=config.model_type,
            layers=int(config.num_hidden_layers),
            heads=int(config.num_attention_heads),
            hidden=int(config.hidden_size),
            ffn=int(config.intermediate_size),
        )
    except AttributeError as exc:
        raise KdbenchError(f"teacher {name!r} is not an encoder kdbench understands ({exc})") from None


# Models whose position ids start after the padding index, so `pad_token_id + 1` positions are never used by tokens.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "mpnet", "longformer", "data2vec-text"}


def max_sequence_length(teacher_config) -> int | None:
    """The longest sequence the teacher's position embeddings can take (None when unbounded, e.g. relative)."""
    limit = getattr(teacher_config, "max_position_embeddings", None)
    if limit is None:
        return None
    if teacher_config.model_type in _OFFSET_POSITIONS:
        limit -= (getattr(teacher_config, "pad_token_id", 0) or 0) + 1
    return int(limit)
