"""The study runner on tiny models and data: a full run, skipping finished cells, one cell at a time, and resuming
after a simulated kill."""

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.errors import KdbenchError
from kdbench.study import cells, load_study, run_study

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


def write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=1):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(teacher=bert_teacher, data=glue_parquet, zoo=tiny_zoo, epochs=epochs))
    return path


def test_full_run_then_a_rerun_does_nothing_but_the_report(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    study = load_study(write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo))
    ids = [c.id for c in cells(study)]
    assert ids[0] == "distill/rte/half_layers/s7/f1.0" and ids[-1] == "profile" and len(ids) == 2 * 4 + 1
    seen = []
    ran = run_study(study, progress=lambda cid, done, total, left: seen.append((cid, done, total)))
    assert ran == ids and seen[0] == (ids[0], 0, 9) and seen[-1][1] == 8
    assert (tmp_path / "out" / "REPORT.md").is_file() and (tmp_path / "out" / "profile.json").is_file()
    assert run_study(study) == []


def test_one_cell_at_a_time_and_skipping_finished_cells(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    runner = CliRunner()
    one = runner.invoke(app, ["study", str(path), "--cell", "distill/rte/two_heads_pruned/s7/f1.0"])
    assert one.exit_code == 0, one.output
    listing = runner.invoke(app, ["study", str(path), "--list"]).output
    assert "done    distill/rte/two_heads_pruned/s7/f1.0" in listing and "pending distill/rte/half_layers" in listing
    ran = run_study(load_study(path))
    assert "distill/rte/two_heads_pruned/s7/f1.0" not in ran and "distill/rte/half_layers/s7/f1.0" in ran
    bad = runner.invoke(app, ["study", str(path), "--cell", "distill/rte/half_layer/s7/f1.0"])
    assert bad.exit_code == 2 and "did you mean" in bad.output


def test_resume_after_a_simulated_kill(tmp_path, bert_teacher, glue_parquet, tiny_zoo, monkeypatch):
    from transformers import Trainer

    from kdbench.distill import TrainConfig, finetune

    study = load_study(write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=2))
    finetune(
        str(bert_teacher),
        "rte",
        TrainConfig(epochs=2, batch_size=8, max_seq_len=16, learning_rate=0.001, seed=7),
        glue_parquet,
        log=lambda *_: None,
    )
    original = Trainer._save_checkpoint

    def save_then_die(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_study(study)
    monkeypatch.setattr(Trainer, "_save_checkpoint", original)
    run = tmp_path / "out" / "runs" / "rte" / "half_layers-s7-f1.0"
    assert (run / "checkpoints").is_dir() and not (run / "metrics.json").exists()
    ran = run_study(study)
    assert ran[0] == "distill/rte/half_layers/s7/f1.0" and (run / "metrics.json").is_file()


def test_bad_study_files(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("tasks: [rte]\nstudent: [6L]\n")
    with pytest.raises(KdbenchError, match="unknown field 'student' \\(did you mean 'students'\\?\\)"):
        load_study(path)
    path.write_text("tasks: [rte\n")
    with pytest.raises(KdbenchError, match="not a valid study file"):
        load_study(path)
    path.write_text("students: [6L]\n")
    with pytest.raises(KdbenchError, match="field 'tasks' is required"):
        load_study(path)
