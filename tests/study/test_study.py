"""The study runner on tiny models and data: a full run, skipping finished cells, one cell at a time, and resuming
after a simulated kill."""

import json
from pathlib import Path

import pytest
from helpers import STUDY
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core.errors import KdbenchError
from kdbench.study.cells import cells
from kdbench.study.runner import run_study
from kdbench.study.spec import load_study


def write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=1):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY.format(teacher=bert_teacher, data=glue_parquet, zoo=tiny_zoo, epochs=epochs))
    return path


def uninterrupted(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs):
    """The same study's half_layers run trained in one go, in a folder of its own: what a resumed run must equal."""
    folder = tmp_path / "uninterrupted"
    folder.mkdir()
    run_study(load_study(write_study(folder, bert_teacher, glue_parquet, tiny_zoo, epochs)), only=HALF)
    return folder / "out" / "runs" / "rte" / "half_layers-s7-f1.0"


def assert_resumed_and_equal(run, reference):
    """`run` was continued from a checkpoint and ends exactly where the uninterrupted run does: scores, optimizer
    steps, layer map, and every per-example answer."""
    import json

    doc, ref = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    assert doc["resumed"] and not ref["resumed"]
    for key in ("metrics", "teacher_metrics", "optimizer_steps", "layer_map"):
        assert doc[key] == ref[key], key
    answers, ref_answers = (json.loads((r / "predictions.json").read_text())["splits"] for r in (run, reference))
    assert answers == ref_answers


HALF = "distill/rte/half_layers/s7/f1.0"


def record_resumes(monkeypatch) -> list:
    """The checkpoint every Trainer.train call of the test continues from (None: from scratch)."""
    from transformers import Trainer

    starts, train = [], Trainer.train

    def spy(self, *args, resume_from_checkpoint=None, **kwargs):
        starts.append(resume_from_checkpoint and Path(resume_from_checkpoint).name)
        return train(self, *args, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(Trainer, "train", spy)
    return starts


def test_full_run_then_a_rerun_does_nothing_but_the_report(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    study = load_study(write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo))
    ids = [c.id for c in cells(study)]
    assert ids[:2] == ["finetune/rte", "distill/rte/half_layers/s7/f1.0"] and ids[-1] == "profile"
    assert len(ids) == 1 + 2 * 4 + 1
    seen = []
    ran = run_study(study, progress=lambda cid, done, total, left: seen.append((cid, done, total)))
    assert ran == ids and seen[0] == (ids[0], 0, 10) and seen[-1][1] == 9
    assert (tmp_path / "out" / "REPORT.md").is_file() and (tmp_path / "out" / "profile.json").is_file()
    assert run_study(study) == []


def test_one_cell_at_a_time_and_skipping_finished_cells(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    runner = CliRunner()
    one = runner.invoke(app, ["study", str(path), "--cell", "distill/rte/two_heads_pruned/s7/f1.0"])
    assert one.exit_code == 0, one.output
    assert "--report" in one.output and not (tmp_path / "out" / "REPORT.md").exists()  # a job of an array: no report
    listing = runner.invoke(app, ["study", str(path), "--list"]).output
    assert "done    distill/rte/two_heads_pruned/s7/f1.0" in listing and "pending distill/rte/half_layers" in listing
    assert listing.splitlines()[-1] == "pending report: written when every cell is done"
    partial = runner.invoke(app, ["study", str(path), "--profile-finished"])  # a stopped study gets its speeds
    assert partial.exit_code == 0, partial.output
    timed = json.loads((tmp_path / "out" / "profile.json").read_text())["settings"]["runs"]
    assert [Path(r).name for r in timed] == ["two_heads_pruned-s7-f1.0"] and (tmp_path / "out" / "REPORT.md").is_file()
    ran = run_study(load_study(path))
    assert "distill/rte/two_heads_pruned/s7/f1.0" not in ran and "distill/rte/half_layers/s7/f1.0" in ran
    assert "profile" in ran  # the partial profile is redone once every run exists
    bad = runner.invoke(app, ["study", str(path), "--cell", "distill/rte/half_layer/s7/f1.0"])
    assert bad.exit_code == 2 and "did you mean" in bad.output


def test_resume_after_a_simulated_kill(tmp_path, bert_teacher, glue_parquet, tiny_zoo, monkeypatch):
    from transformers import Trainer

    study = load_study(write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=2))
    assert run_study(study, only="finetune/rte") == ["finetune/rte"]  # the kill below hits the student, not it
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
    starts = record_resumes(monkeypatch)
    ran = run_study(study)
    assert ran[0] == "distill/rte/half_layers/s7/f1.0" and (run / "metrics.json").is_file()
    assert starts[0] == "checkpoint-3"  # the kill came right after epoch 1's checkpoint (24 rows, batch 8)
    assert_resumed_and_equal(run, uninterrupted(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=2))


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


SWEEPS = """
tasks: [rte, cola]
students: [half_layers]
teacher_train: {epochs: 3}
train: {epochs: 1, max_train_samples: 20}
sweeps:
  - name: spread
    tasks: [rte]
    students: [half_layers, narrow]
    seeds: [42, 43]
  - name: size
    tasks: [rte]
    students: [half_layers]
    train_fractions: [0.5, 1.0]
  - name: sliced
    tasks: [rte]
    students: [narrow]
    distill: {init: slice}
export: {quantize: int8, tasks: [rte]}
profile: {task: rte, batch_sizes: [1]}
"""


def test_sweeps_share_runs_and_teachers_and_filter_export_and_profile(tmp_path, tiny_zoo, glue_parquet):
    from kdbench.study.cells import profiled_paths, run_specs
    from kdbench.study.spec import student_train_config, teacher_train_config

    path = tmp_path / "study.yaml"
    path.write_text(SWEEPS + f"students_dir: {tiny_zoo}\ndata_dir: {glue_parquet}\n")
    study = load_study(path, teacher="some-teacher")
    specs = {s.id: s for s in run_specs(study)}
    # rte/half_layers/s42/f1.0 is asked for by all three sweeps and trained once
    assert specs["rte/half_layers/s42/f1.0"].sweeps == ("main", "spread", "size")
    assert sorted(specs) == sorted(
        [
            "rte/half_layers/s42/f1.0",
            "cola/half_layers/s42/f1.0",
            "rte/narrow/s42/f1.0",
            "rte/half_layers/s43/f1.0",
            "rte/narrow/s43/f1.0",
            "rte/half_layers/s42/f0.5",
            "rte/narrow/s42/f1.0-init-slice",
        ]
    )
    sliced = specs["rte/narrow/s42/f1.0-init-slice"]
    assert sliced.path.name == "narrow-s42-f1.0-init-slice" and sliced.recipe == (("init", "slice"),)
    ids = [c.id for c in cells(study)]
    assert [i for i in ids if i.startswith("finetune/")] == ["finetune/rte", "finetune/cola"]  # once per task
    assert "export/rte/narrow/s43/f1.0" in ids and not any(i.startswith("export/cola") for i in ids)
    # the teacher keeps its own budget whatever the students' seed or fraction
    assert (
        teacher_train_config(study, "rte").epochs == 3 and teacher_train_config(study, "rte").max_train_samples is None
    )
    assert student_train_config(study, "rte", 43, 0.5).max_train_samples == 10  # half of the 20-row student subset
    profiled = profiled_paths(study, list(specs.values()))
    assert {p.name for p in profiled} == {"half_layers-s42-f1.0", "narrow-s42-f1.0"}


@pytest.mark.parametrize(
    "body, message",
    [
        ("sweeps: {tasks: [rte]}", "field 'sweeps' is a list"),
        ("sweeps: [{tasks: [rte], student: [x]}]", "sweeps\\[0\\]: unknown field 'student' \\(did you mean 'students'"),
        ("sweeps: [{tasks: [rte]}]", "sweeps\\[0\\]: field 'students' is required"),
        ("train: {epoch: 2}", "train: unknown field 'epoch' \\(did you mean 'epochs'"),
        ("task_train: {rte: {seeds: 2}}", "task_train: unknown field 'seeds' \\(did you mean 'seed'"),
        ("profile: {batch_size: [1]}", "profile: unknown field 'batch_size' \\(did you mean 'batch_sizes'"),
        ("export: {quantise: int8}", "export: unknown field 'quantise' \\(did you mean 'quantize'"),
        ("export: int8", "field 'export' is a mapping"),
        (
            "sweeps: [{tasks: [rte], students: [6L], distill: {inti: slice}}]",
            "unknown field 'inti' \\(did you mean 'init'",
        ),
    ],
)
def test_bad_sweeps_and_settings_name_the_field(tmp_path, body, message):
    path = tmp_path / "s.yaml"
    path.write_text(f"tasks: [rte]\nstudents: [6L]\n{body}\n")
    with pytest.raises(KdbenchError, match=message):
        load_study(path)


def test_log_feeds_the_eta_and_the_report_opens_with_setup_and_compute(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    import json

    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    path.write_text(path.read_text() + "notes: |\n  The teacher is tiny; nothing here is a finding.\n")
    study = load_study(path)
    assert run_study(study, only="finetune/rte") == ["finetune/rte"]
    log = json.loads((tmp_path / "out" / "study-log" / "finetune" / "rte.json").read_text())
    assert log["kind"] == "finetune" and log["seconds"] > 0
    lefts = []
    run_study(study, progress=lambda cid, done, total, left: lefts.append(left))
    assert lefts[0] is not None  # known from the log before any cell of this session finished
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "| main | rte | half_layers,two_heads_pruned | default: 7 | rte: 1.0 |" in md
    assert "| distill | 2 | " in md and "| **total** | 10 | **" in md
    assert "nothing here is a finding" in md


def test_a_time_limit_checkpoints_the_training_in_flight_and_a_rerun_continues(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo, monkeypatch
):
    import time

    import kdbench.study.local_executor as study_mod

    study = load_study(write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=2))
    assert run_study(study, deadline=time.time() - 1) == []  # past the limit: no cell starts
    assert not (tmp_path / "out" / "REPORT.md").exists() and not (tmp_path / "out" / "study-log").exists()
    assert run_study(study, only="finetune/rte") == ["finetune/rte"]
    # let the study start the next cell although the limit has passed: the training itself must stop at once
    past = study_mod.past
    monkeypatch.setattr(study_mod, "past", lambda deadline: False)
    assert run_study(study, deadline=time.time() - 1) == []
    run = tmp_path / "out" / "runs" / "rte" / "half_layers-s7-f1.0"
    assert (run / "checkpoints").is_dir() and not (run / "metrics.json").exists()
    monkeypatch.setattr(study_mod, "past", past)
    starts = record_resumes(monkeypatch)
    ran = run_study(study)
    assert ran[0] == "distill/rte/half_layers/s7/f1.0" and (run / "metrics.json").is_file()
    assert starts[0] == "checkpoint-1"  # the deadline stopped it after its first step
    assert not (run / "checkpoints").exists()
    assert_resumed_and_equal(run, uninterrupted(tmp_path, bert_teacher, glue_parquet, tiny_zoo, epochs=2))


def test_parallel_jobs_run_every_cell_once_after_the_cells_it_needs(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    import json

    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    path.write_text(path.read_text().replace("export: {quantize: int8, parity_samples: 8}\n", ""))
    study = load_study(path)
    ids = [c.id for c in cells(study)]
    seen = []
    ran = run_study(study, progress=lambda what, done, total, left: seen.append((done, total)), jobs=2)
    assert sorted(ran) == sorted(ids) and len(ran) == len(set(ran))
    assert seen and all(total == len(ids) for _, total in seen)
    log = tmp_path / "out" / "study-log"
    record = {i: json.loads((log / f"{i}.json").read_text()) for i in ids}
    for i in ids[1:-1]:  # every distillation started after its teacher's fine-tune finished
        assert record[i]["started"] >= record["finetune/rte"]["finished"]
        assert (log / f"{i}.log").is_file()  # the worker's output, one file per cell
    assert record["profile"]["started"] >= max(record[i]["finished"] for i in ids[:-1])  # it times alone
    assert run_study(study, jobs=2) == []


def test_cli_time_limit_and_jobs_are_checked(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    bad = CliRunner().invoke(app, ["study", str(path), "--time-limit", "soon"])
    assert bad.exit_code == 2 and "expected a duration such as 90s" in bad.output
    bad = CliRunner().invoke(app, ["study", str(path), "--jobs", "0"])
    assert bad.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_report_only_runs_nothing(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    path = write_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    empty = CliRunner().invoke(app, ["study", str(path), "--report"])
    assert empty.exit_code == 2 and "no finished run yet" in empty.output
    assert run_study(load_study(path), only="distill/rte/half_layers/s7/f1.0")
    ok = CliRunner().invoke(app, ["study", str(path), "--report"])
    assert ok.exit_code == 0, ok.output
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "half_layers" in md and not (tmp_path / "out" / "runs" / "rte" / "two_heads_pruned-s7-f1.0").exists()


STUDY_ERRORS = [
    ("profile: {batch_sizes: [0]}\n", "s.yaml: profile.batch_sizes: must be positive integers, got [0]"),
    ("profile: {backends: [tpu]}\n", "s.yaml: profile.backends: is 'tpu'"),
    ("profile: {task: cola}\n", "s.yaml: profile.task: 'cola' is not among the study's tasks"),
    ("export: {optimize: O9}\n", "s.yaml: export.optimize: is 'O9'"),
    ("export: {opset: 3}\n", "s.yaml: export.opset: is 3"),
    ("export: {tasks: [sst2]}\n", "s.yaml: export.tasks: sst2 not among"),
    ('seeds: "forty-two"\n', "s.yaml: main.seeds: must be a list of integers"),
    ("seeds: {rte: [1.5]}\n", "s.yaml: main.seeds: must be a list of integers"),
    ("train_fractions: [0]\n", "s.yaml: main.train_fractions: must be a list of numbers in (0, 1]"),
    ("train_fractions: [1.5]\n", "s.yaml: main.train_fractions"),
    ("train: {device: tpu}\n", "s.yaml: train.device: is 'tpu'"),
    ("train: {learning_rate: -1}\n", "s.yaml: train.learning_rate: must be positive and finite, got -1"),
    ("train: {batch_size: twelve}\n", "s.yaml: train.batch_size: must be a positive integer, got 'twelve'"),
    ("teacher_train: {epochs: 0}\n", "s.yaml: teacher_train.epochs: must be positive"),
    ("task_train: {rtee: {epochs: 1}}\n", "s.yaml: task_train: unknown task 'rtee'"),
    ("sweeps: [{tasks: [rte], students: [half_layers], distill: {init: copy}}]\n", "'sweep1'.distill.init: is 'copy'"),
]


@pytest.mark.parametrize("extra,message", STUDY_ERRORS)
def test_a_study_file_is_checked_whole_when_it_is_read(extra, message, tmp_path, tiny_zoo):
    """Every setting is built into its configuration when the file is read: a typo fails in the first second, named by
    file and field, never after hours of distillations."""
    path = tmp_path / "s.yaml"
    path.write_text(f"tasks: [rte]\nstudents: [half_layers]\nstudents_dir: {tiny_zoo}\n" + extra)
    with pytest.raises(KdbenchError) as err:
        load_study(path)
    assert message in str(err.value)


def test_unknown_task_or_student_in_a_study_fails_at_load(tmp_path, tiny_zoo):
    path = tmp_path / "s.yaml"
    path.write_text(f"tasks: [rtee]\nstudents: [half_layers]\nstudents_dir: {tiny_zoo}\n")
    with pytest.raises(KdbenchError, match="main.tasks: unknown task 'rtee'"):
        load_study(path)
    path.write_text(f"tasks: [rte]\nstudents: [half_layer]\nstudents_dir: {tiny_zoo}\n")
    with pytest.raises(KdbenchError, match="main.students: unknown student 'half_layer'"):
        load_study(path)


BUDGETS = """
name: budget
teacher: {teacher}
data_dir: {data}
students_dir: {zoo}
tasks: [rte]
students: [half_layers]
train: {{epochs: 1, batch_size: 8, max_seq_len: 16, learning_rate: 0.001}}
sweeps:
  - name: budget
    tasks: [rte, cola]
    students: [half_layers, two_heads]
    budgets:
      rte: [{{max_train_samples: 8, epochs: 1}}, {{max_train_samples: 24, epochs: 2}}]
      cola: [{{max_train_samples: 12, epochs: 1}}, {{max_train_samples: null, epochs: 2}}]
output_dir: out
"""


def test_budget_sweeps_train_each_budget_and_the_report_judges_claims_per_budget(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo
):
    import json

    path = tmp_path / "study.yaml"
    path.write_text(BUDGETS.format(teacher=bert_teacher, data=glue_parquet, zoo=tiny_zoo))
    study = load_study(path)
    ids = [c.id for c in cells(study) if c.kind == "distill"]
    assert "distill/rte/two_heads/s42/f1.0-n8-e1" in ids and "distill/cola/half_layers/s42/f1.0-nall-e2" in ids
    assert "distill/rte/half_layers/s42/f1.0" in ids  # the main grid's own run, with the study's train settings
    run_study(study)
    small = json.loads((tmp_path / "out" / "runs" / "rte" / "two_heads-s42-f1.0-n8-e1" / "metrics.json").read_text())
    assert small["train_samples"] == 8 and small["config"]["train"]["epochs"] == 1
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    budget = report["budget"]
    assert budget["points"] == {"cola": [[12, 1], [24, 2]], "rte": [[8, 1], [24, 2]]}
    assert [v["point"] for v in budget["verdicts"]] == [0, 1] and len(budget["verdicts"][0]["claims"]) == 4
    assert len(budget["curves"]["rte/two_heads"]) == 2
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## Training budget" in md and "B2 (cola 24 x 2, rte 24 x 2)" in md
    assert (tmp_path / "out" / "share_vs_budget.png").is_file()


def test_bad_budgets_fail_at_load(tmp_path, tiny_zoo):
    path = tmp_path / "s.yaml"
    base = f"tasks: [rte]\nstudents: [half_layers]\nstudents_dir: {tiny_zoo}\n"
    path.write_text(base + "sweeps: [{tasks: [rte], students: [half_layers], budgets: [{rows: 5}]}]\n")
    with pytest.raises(KdbenchError, match="unknown field 'rows'"):
        load_study(path)
    path.write_text(base + "sweeps: [{tasks: [rte], students: [half_layers], budgets: [{epochs: 0}]}]\n")
    with pytest.raises(KdbenchError, match="budgets.epochs: must be positive"):
        load_study(path)
