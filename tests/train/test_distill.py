"""Distillation on tiny teachers built in code and tiny data written by the tests: no downloads."""

import math
from pathlib import Path

import pytest
import torch
from helpers import FAST, tiny_cfg

from kdbench.core.errors import KdbenchError
from kdbench.train.config import DistillConfig, TrainConfig
from kdbench.train.distill import distill
from kdbench.train.finetune import finetune
from kdbench.train.losses import feature_loss, hard_loss, soft_loss
from kdbench.train.student import build_student, layer_map
from kdbench.zoo.students import StudentShape


@pytest.mark.parametrize(
    "s,t,expected",
    [
        (3, 12, [0, 6, 11]),
        (6, 12, [0, 2, 4, 7, 9, 11]),
        (1, 12, [11]),
        (4, 4, [0, 1, 2, 3]),
        (2, 6, [0, 5]),
        (9, 12, [0, 1, 3, 4, 6, 7, 8, 10, 11]),
    ],
)
def test_layer_map_ties_first_and_last_and_spreads_the_rest(s, t, expected):
    assert layer_map(s, t) == expected


def test_hard_and_soft_losses_match_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 1.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [0.5, 0.5, 2.0]])
    labels = torch.tensor([1, 2])
    ce = -(torch.log_softmax(s, -1)[0, 1] + torch.log_softmax(s, -1)[1, 2]) / 2
    assert hard_loss(s, labels, False).item() == pytest.approx(ce.item(), rel=1e-6)
    T = 2.0
    p_t, p_s = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
    kl = (p_t * (p_t.log() - p_s.log())).sum() / 2 * T * T
    assert soft_loss(s, t, T, False).item() == pytest.approx(kl.item(), rel=1e-5)
    scores, target = torch.tensor([[1.0], [3.0]]), torch.tensor([[2.0], [2.5]])
    assert soft_loss(scores, target, T, True).item() == pytest.approx((1 + 0.25) / 2)
    assert hard_loss(scores, torch.tensor([1.5, 3.0]), True).item() == pytest.approx((0.25 + 0) / 2)


def test_feature_loss_averages_real_tokens_of_mapped_layers():
    torch.manual_seed(0)
    s_states = [torch.randn(2, 3, 4) for _ in range(3)]  # embeddings + 2 student layers
    t_states = [torch.randn(2, 3, 4) for _ in range(5)]  # embeddings + 4 teacher layers
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    lmap = [0, 3]
    got = feature_loss(s_states, t_states, lmap, mask, torch.nn.Identity(), "mse")
    per_layer = []
    for i, j in enumerate(lmap):
        d = ((s_states[i + 1] - t_states[j + 1]) ** 2).mean(-1)
        per_layer.append(d[mask.bool()].mean())
    assert got.item() == pytest.approx(torch.stack(per_layer).mean().item(), rel=1e-6)
    cos = feature_loss(s_states, s_states + [s_states[-1]] * 2, [0, 1], mask, torch.nn.Identity(), "cosine")
    assert cos.item() == pytest.approx(0.0, abs=1e-6)


def _teacher_model(folder):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def test_init_copies_mapped_layers_embeddings_and_slices_pruned_heads(bert_teacher):
    teacher = _teacher_model(bert_teacher)
    half = StudentShape("half", "", "paper", 2, 4, 8, 32, 64)
    student, lmap, report = build_student(teacher, half, "teacher")
    assert lmap == [0, 3] and not report.random
    assert torch.equal(
        student.bert.encoder.layer[1].output.dense.weight, teacher.bert.encoder.layer[3].output.dense.weight
    )
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, teacher.bert.embeddings.word_embeddings.weight)
    pruned = StudentShape("p", "", "pruned", 4, 2, 8, 32, 64, 4)
    student, _, report = build_student(teacher, pruned, "teacher")
    q = student.bert.encoder.layer[2].attention.self.query.weight
    assert q.shape == (16, 32) and torch.equal(q, teacher.bert.encoder.layer[2].attention.self.query.weight[:16])
    assert any("attention.self.query.weight" in n for n in report.sliced)
    narrow = StudentShape("n", "", "paper", 4, 4, 4, 16, 64)
    _, _, report = build_student(teacher, narrow, "teacher")
    assert "bert.embeddings.word_embeddings.weight" in report.random
    student, _, report = build_student(teacher, narrow, "slice")  # weight selection: the leading dimensions
    assert not report.random and "bert.embeddings.word_embeddings.weight" in report.sliced
    w = student.bert.encoder.layer[3].intermediate.dense.weight
    assert w.shape == (64, 16) and torch.equal(w, teacher.bert.encoder.layer[3].intermediate.dense.weight[:, :16])
    assert torch.equal(student.bert.embeddings.LayerNorm.weight, teacher.bert.embeddings.LayerNorm.weight[:16])
    _, _, report = build_student(teacher, half, "random")
    assert not report.copied


@pytest.mark.parametrize(
    "teacher_fixture,data_fixture", [("bert_teacher", "glue_parquet"), ("roberta_teacher", "glue_tsv")]
)
def test_distill_writes_a_loadable_run_folder(request, teacher_fixture, data_fixture, tmp_path, tiny_zoo):
    from transformers import AutoModelForSequenceClassification

    teacher, data = request.getfixturevalue(teacher_fixture), request.getfixturevalue(data_fixture)
    cfg = tiny_cfg(teacher, data, tiny_zoo, tmp_path / "run")
    doc = distill(cfg, log=lambda *_: None)
    run = tmp_path / "run"
    model = AutoModelForSequenceClassification.from_pretrained(run / "student")
    assert model.config.num_hidden_layers == 2 and model.config.num_labels == 2
    assert (run / "student" / "tokenizer_config.json").is_file() and (run / "config.json").is_file()
    assert doc["layer_map"] == [0, 3] and 0 <= doc["score"] <= 1 and doc["teacher_score"] > 0
    assert doc["share_of_teacher"] == pytest.approx(doc["score"] / doc["teacher_score"])
    assert doc["epochs"] and not (run / "checkpoints").exists()


def test_regression_task_uses_mse_losses(bert_teacher, glue_parquet, tmp_path, tiny_zoo, monkeypatch):
    """STS-B: every training step's label loss and soft loss are the mean squared error of the one-output logits
    (against the scores, and against the teacher's), not a cross-entropy; its metrics are correlations."""
    import torch.nn.functional as F

    from kdbench.train import trainer

    seen = []

    def spy(kind, real):
        def loss(student_logits, target, *rest):
            value = real(student_logits, target, *rest)
            reference = F.mse_loss(student_logits.squeeze(-1), target.float().reshape(student_logits.shape[0]))
            seen.append((kind, rest[-1], student_logits.shape[-1], float(value.detach()), float(reference.detach())))
            return value

        return loss

    monkeypatch.setattr(trainer, "hard_loss", spy("label", trainer.hard_loss))
    monkeypatch.setattr(trainer, "soft_loss", spy("soft", trainer.soft_loss))
    cfg = tiny_cfg(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "run", task="stsb")
    doc = distill(cfg, log=lambda *_: None)
    assert set(doc["metrics"]["validation"]) == {"pearson", "spearman"}
    assert {kind for kind, *_ in seen} == {"label", "soft"} and len(seen) >= 2 * 3  # 24 rows at batch 8: 3 steps
    for kind, regression, outputs, value, mse in seen:
        assert regression and outputs == 1 and value == pytest.approx(mse, rel=1e-5), kind


def test_teacher_fine_tuning_is_cached(bert_teacher, glue_parquet):
    logs = []
    first = finetune(str(bert_teacher), "cola", FAST, glue_parquet, log=logs.append)
    again = finetune(str(bert_teacher), "cola", FAST, glue_parquet, log=logs.append)
    assert first == again and "found in cache" in logs[-1]
    other = finetune(
        str(bert_teacher),
        "cola",
        TrainConfig(**{**FAST.__dict__, "learning_rate": 2e-3}),
        glue_parquet,
        log=logs.append,
    )
    assert other != first


def test_the_same_teacher_fine_tune_repeats_exactly_with_a_new_head(bert_teacher, glue_parquet, tmp_path, monkeypatch):
    """STS-B needs a one-output head that the 2-label checkpoint lacks: it is drawn at random, from the seed."""
    from safetensors.torch import load_file

    weights = []
    for name in ("a", "b"):
        monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / name))
        torch.rand(7)  # whatever ran before in this process must not matter
        folder = finetune(str(bert_teacher), "stsb", FAST, glue_parquet, log=lambda *_: None)
        weights.append(load_file(str(folder / "model.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "student" / "model.safetensors"))


def test_same_seed_repeats_exactly_on_cpu(bert_teacher, glue_parquet, tmp_path, tiny_zoo):
    runs = []
    for name in ("a", "b"):
        cfg = tiny_cfg(bert_teacher, glue_parquet, tiny_zoo, tmp_path / name, student="two_heads_pruned")
        distill(cfg, log=lambda *_: None)
        runs.append(_weights(tmp_path / name))
    assert runs[0].keys() == runs[1].keys()
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_continues_an_interrupted_run(bert_teacher, glue_parquet, tmp_path, tiny_zoo, monkeypatch):
    from transformers import Trainer

    train = TrainConfig(**{**FAST.__dict__, "epochs": 2})
    cfg = tiny_cfg(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "run", train=train)
    finetune(str(bert_teacher), "rte", train, glue_parquet, log=lambda *_: None)  # the kill hits the student
    original = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        distill(cfg, log=lambda *_: None)
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    assert not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(KdbenchError, match="interrupted run; pass --resume"):
        distill(cfg, log=lambda *_: None)
    doc = distill(DistillConfig(**{**cfg.__dict__, "resume": True}), log=lambda *_: None)
    assert math.isclose(doc["epochs"][-1]["epoch"], 2.0)
    straight = DistillConfig(**{**cfg.__dict__, "output_dir": tmp_path / "straight"})
    distill(straight, log=lambda *_: None)
    a, b = _weights(tmp_path / "run"), _weights(tmp_path / "straight")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)  # resumed == uninterrupted


def test_resume_of_a_run_stopped_before_its_first_checkpoint_starts_from_scratch(
    bert_teacher, glue_parquet, tmp_path, tiny_zoo, monkeypatch
):
    """Killed after writing its config and before any checkpoint: --resume says there is nothing to resume and trains
    the run from the start, to the same student as a run never stopped; a half-written checkpoint goes."""
    from transformers import Trainer

    from kdbench.results.run import STARTED, Run
    from kdbench.train.distill import resumed_config

    cfg = tiny_cfg(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "run")
    finetune(str(bert_teacher), "rte", FAST, glue_parquet, log=lambda *_: None)
    train = Trainer.train

    def killed(self, *args, **kwargs):
        (Path(self.args.output_dir) / "checkpoint-3").mkdir(parents=True)  # weights half-written, no trainer state
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        distill(cfg, log=lambda *_: None)
    monkeypatch.setattr(Trainer, "train", train)
    assert Run(tmp_path / "run").state() == STARTED
    with pytest.raises(KdbenchError, match="stopped before its first checkpoint; pass --resume"):
        distill(cfg, log=lambda *_: None)
    said = []
    doc = distill(resumed_config(tmp_path / "run", {}), log=said.append)
    assert any("nothing to resume, so it starts again from scratch" in line for line in said)
    assert not doc["resumed"] and not (tmp_path / "run" / "checkpoints").exists()
    straight = distill(DistillConfig(**{**cfg.__dict__, "output_dir": tmp_path / "straight"}), log=lambda *_: None)
    assert doc["metrics"] == straight["metrics"] and doc["optimizer_steps"] == straight["optimizer_steps"]
    a, b = _weights(tmp_path / "run"), _weights(tmp_path / "straight")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(task="rtee"), "unknown task 'rtee'"),
        (dict(init="copy"), "init is 'copy'; allowed: teacher, slice, random"),  # the setting, not the flag
        (dict(feature_loss="l1"), "feature_loss is 'l1'"),
        (dict(temperature=0), "temperature must be positive"),
        (dict(resume=True, overwrite=True), "exclude each other"),
    ],
)
def test_config_validation(kwargs, message):
    with pytest.raises(KdbenchError) as err:
        DistillConfig(**{"task": "rte", "student": "6L", **kwargs})
    assert message in str(err.value)


def test_last_checkpoint_skips_one_a_kill_left_half_written(tmp_path):
    from kdbench.results.run import last_checkpoint

    assert last_checkpoint(tmp_path) is None
    for step, complete in ((5, True), (10, True), (15, False)):  # killed while the Trainer wrote checkpoint-15
        (tmp_path / f"checkpoint-{step}").mkdir()
        if complete:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_an_fp16_checkpoint_loads_as_fp32_weights(tmp_path, bert_teacher):
    # transformers 5 keeps a checkpoint's saved dtype unless told otherwise (4.x loads fp32 by default)
    from transformers import AutoModelForSequenceClassification

    from kdbench.train.trainer import load_pretrained

    half = tmp_path / "half"
    AutoModelForSequenceClassification.from_pretrained(bert_teacher).half().save_pretrained(half)
    for f in bert_teacher.glob("*.txt"):
        (half / f.name).write_bytes(f.read_bytes())
    for f in bert_teacher.glob("*token*.json"):
        (half / f.name).write_bytes(f.read_bytes())
    model, _ = load_pretrained(str(half), 2, "teacher")
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # Adam on fp16 master weights would not learn


def test_the_teacher_cache_key_does_not_depend_on_how_a_number_was_written(tmp_path):
    from kdbench.tasks.task import get_task
    from kdbench.train.finetune import teacher_cache_dir

    a = teacher_cache_dir("t", get_task("rte"), TrainConfig(epochs=2, learning_rate=1e-3), tmp_path)
    b = teacher_cache_dir("t", get_task("rte"), TrainConfig(epochs=2.0, learning_rate=0.001), tmp_path)
    assert a == b
    assert a != teacher_cache_dir("t", get_task("rte"), TrainConfig(epochs=3, learning_rate=1e-3), tmp_path)
