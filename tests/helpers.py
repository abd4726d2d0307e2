"""Helpers several test modules share: tiny distillation settings, command-line invocations, a finished run folder
built in code, and a tiny study file."""

from __future__ import annotations

from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.results.run import Run
from kdbench.train.config import DistillConfig, TrainConfig
from kdbench.zoo.students import StudentShape

FAST = TrainConfig(epochs=1, batch_size=8, max_seq_len=16, learning_rate=1e-3, seed=7)


def tiny_cfg(teacher, data, zoo, out, task="rte", student="half_layers", train=FAST, **kw) -> DistillConfig:
    """A distillation of a tiny student in one fast epoch."""
    return DistillConfig(
        task=task,
        student=student,
        teacher=str(teacher),
        students_dir=zoo,
        data_dir=data,
        output_dir=out,
        train=train,
        **kw,
    )


runner = CliRunner()


FAST_ARGS = ["--epochs", "1", "--batch-size", "8", "--max-seq-len", "16", "--learning-rate", "1e-3"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())
    for f in fragments:
        assert f in text, text


def base(teacher, data, zoo, out, *extra):
    return [
        "distill",
        "--task",
        "rte",
        "--student",
        "half_layers",
        "--teacher",
        teacher,
        "--data-dir",
        data,
        "--students-dir",
        zoo,
        "--output-dir",
        out,
        *FAST_ARGS,
        *extra,
    ]


SHAPES = {
    "pruned": StudentShape("p", "", "pruned", 2, 2, 8, 32, 64, 4),
    "narrow": StudentShape("n", "", "paper", 2, 4, 4, 16, 64),
}


def make_run(folder, teacher_dir, data_dir, shape):
    """A run folder as `kdbench distill` leaves it, with a randomly initialised student of `shape`."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from kdbench.zoo.modeling import build_model

    torch.manual_seed(0)
    model = build_model(AutoConfig.from_pretrained(teacher_dir), shape)
    model.save_pretrained(folder / "student")
    AutoTokenizer.from_pretrained(teacher_dir).save_pretrained(folder / "student")
    run = Run(folder)
    run.write_config({"task": "rte", "student": shape.name, "data_dir": str(data_dir), "train": {"max_seq_len": 16}})
    run.write_metrics({"schema": "kdbench.distill", "task": "rte", "student": shape.name})  # marks it finished
    return folder


STUDY = """
name: tiny-study
teacher: {teacher}
data_dir: {data}
students_dir: {zoo}
tasks: [rte]
students: [half_layers, two_heads_pruned]
seeds: {{default: [7]}}
train: {{epochs: {epochs}, batch_size: 8, max_seq_len: 16, learning_rate: 0.001}}
train_fractions: {{rte: [1.0]}}
export: {{quantize: int8, parity_samples: 8}}
profile: {{batch_sizes: [1], seq_lens: [16], warmup_runs: 1, warmup_time_s: 0, min_runs: 3, min_time_s: 0}}
output_dir: out
"""
