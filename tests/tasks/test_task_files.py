"""Tasks as files: the shipped GLUE files against the definitions they replace, every field error, string labels,
many classes, long texts, a hub dataset faked offline, and a CSV task distilled, exported and evaluated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import _sentences
from helpers import FAST

from kdbench.core.errors import KdbenchError
from kdbench.tasks.loading import load_task, tokenize
from kdbench.tasks.task import get_task, load_task_file, load_tasks, recorded_task, resolve_task

# The nine GLUE tasks as kdbench defined them in code before task files: (text fields, labels, metrics, eval splits,
# TSV folder, label names the classic TSV files write). The shipped files must say exactly this.
BUILT_IN = {
    "cola": (("sentence",), 2, ("matthews_correlation",), ("validation",), "CoLA", ()),
    "sst2": (("sentence",), 2, ("accuracy",), ("validation",), "SST-2", ()),
    "mrpc": (("sentence1", "sentence2"), 2, ("f1", "accuracy"), ("validation",), "MRPC", ()),
    "stsb": (("sentence1", "sentence2"), 1, ("pearson", "spearman"), ("validation",), "STS-B", ()),
    "qqp": (("question1", "question2"), 2, ("f1", "accuracy"), ("validation",), "QQP", ()),
    "mnli": (
        ("premise", "hypothesis"),
        3,
        ("accuracy",),
        ("validation_matched", "validation_mismatched"),
        "MNLI",
        ("entailment", "neutral", "contradiction"),
    ),
    "qnli": (("question", "sentence"), 2, ("accuracy",), ("validation",), "QNLI", ("entailment", "not_entailment")),
    "rte": (("sentence1", "sentence2"), 2, ("accuracy",), ("validation",), "RTE", ("entailment", "not_entailment")),
    "wnli": (("sentence1", "sentence2"), 2, ("accuracy",), ("validation",), "WNLI", ()),
}


def test_glue_task_files_reproduce_the_built_in_definitions():
    tasks = load_tasks()
    assert set(tasks) == set(BUILT_IN)
    for name, (text, labels, metrics, splits, tsv, tsv_names) in BUILT_IN.items():
        t = tasks[name]
        assert (t.text_fields, t.num_labels, t.metrics, t.eval_splits, t.tsv_dir) == (
            text,
            labels,
            metrics,
            splits,
            tsv,
        )
        assert (t.hub, t.hub_config, t.label_column) == ("nyu-mll/glue", name, "label")
        assert t.label_names[: len(tsv_names)] == tsv_names and len(t.label_names) == (0 if labels == 1 else labels)
        assert t.fingerprint() == name  # fine-tuned teachers cached before task files keep their keys


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def csv_task(folder: Path, n: int = 24, labels=("neg", "pos"), column="review", label="sentiment", **extra) -> Path:
    """A single-text task in CSV with string labels, n training rows and n // 2 evaluation rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows, seed in (("train", n, 1), ("dev", n // 2, 2)):
        frame = pd.DataFrame({column: _sentences(rows, seed), label: [labels[i % len(labels)] for i in range(rows)]})
        frame.to_csv(folder / f"{split}.csv", index=False)
    return write(
        folder,
        "reviews.toml",
        f'name = "reviews"\ntext = "{column}"\nlabel = "{label}"\nlabels = {json.dumps(list(labels))}\n'
        f'metrics = ["accuracy", "f1_macro"]\n[data]\ntrain = "train.csv"\nvalidation = "dev.csv"\n'
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in extra.items()),
    )


@pytest.fixture
def task_dir(tmp_path) -> Path:
    folder = tmp_path / "task"
    folder.mkdir()
    return folder


GOOD = 'text = "t"\nlabels = ["a", "b"]\nmetrics = ["accuracy"]\n[data]\ntrain = "train.csv"\nvalidation = "dev.csv"\n'


@pytest.mark.parametrize(
    "body,fragment",
    [
        ("txet = 1\n" + GOOD, "x.toml: txet: unknown field"),
        (GOOD.replace('text = "t"\n', ""), "x.toml: text: is required"),
        (GOOD.replace('text = "t"', 'text = ["a", "b", "c"]'), "x.toml: text: names 1 or 2 distinct column(s), got 3"),
        (GOOD.replace('text = "t"', "text = 3"), "x.toml: text: must be a column name or a list of them"),
        ('label = "t"\n' + GOOD, "x.toml: label: must name the label column (not a text column)"),
        (GOOD.replace('["a", "b"]', '["a"]'), "x.toml: labels: must list two or more class names"),
        (GOOD.replace('["a", "b"]', '["a", "a"]'), "x.toml: labels: names a class twice"),
        (GOOD.replace('["a", "b"]', '"regresion"'), "x.toml: labels: must list two or more class names"),
        (
            GOOD.replace('["accuracy"]', '["acuracy"]'),
            "x.toml: metrics: 'acuracy' is not a metric (did you mean 'accuracy'?)",
        ),
        (GOOD.replace('["accuracy"]', "[]"), "x.toml: metrics: must list one or more of"),
        (GOOD.replace('["accuracy"]', '["pearson"]'), "x.toml: metrics: pearson does not fit a classification task"),
        (
            GOOD.replace('["a", "b"]', '"regression"'),
            "x.toml: metrics: accuracy does not fit a regression task; allowed: pearson, spearman",
        ),
        (GOOD.replace('["a", "b"]', '["a", "b", "c"]').replace('["accuracy"]', '["f1"]'), "f1 is binary"),
        (GOOD.split("[data]")[0], "x.toml: data: is required"),
        (GOOD + 'hub_id = "x"\n', "x.toml: data.hub_id: unknown field (did you mean 'hub'?)"),
        (GOOD.replace('train = "train.csv"\n', ""), "x.toml: data.train: is required"),
        (GOOD.replace("dev.csv", "nope.csv"), "x.toml: data.validation: no such file:"),
        (GOOD.replace("train.csv", "train.xlsx"), "x.toml: data.train: train.xlsx is not a .csv, .tsv"),
        (GOOD + 'glue_tsv = "X"\n', "x.toml: data: config and glue_tsv belong to a hub dataset"),
        (
            GOOD.replace('train = "train.csv"', 'hub = "org/set"\ntrain = "training"'),
            "x.toml: data.train: a hub task's training split is named 'train'",
        ),
        ('name = "my task"\n' + GOOD, "x.toml: name: must be a name without spaces"),
        ("text = [\n", "x.toml: not valid TOML"),
    ],
)
def test_a_bad_task_file_names_the_file_and_the_field(task_dir, body, fragment):
    for split in ("train.csv", "dev.csv"):
        write(task_dir, split, "t,label\nx,a\n")
    with pytest.raises(KdbenchError) as err:
        load_task_file(write(task_dir, "x.toml", body))
    assert fragment in str(err.value)


def test_names_resolve_among_a_tasks_folder_with_did_you_mean(tmp_path, task_dir):
    csv_task(task_dir)
    assert resolve_task("REVIEWS", task_dir).name == "reviews" and resolve_task("sst-2").name == "sst2"
    assert resolve_task(str(task_dir / "reviews.toml")).files["train"] == str((task_dir / "train.csv").resolve())
    with pytest.raises(KdbenchError, match="unknown task 'review' \\(did you mean 'reviews'\\?\\)"):
        resolve_task("review", task_dir)
    with pytest.raises(KdbenchError, match="tasks folder .* does not exist"):
        resolve_task("reviews", tmp_path / "nope")
    with pytest.raises(KdbenchError, match="no such task file"):
        resolve_task(str(tmp_path / "nope.toml"))


def test_string_labels_map_to_ids_in_the_order_given(task_dir):
    task = load_task_file(csv_task(task_dir, labels=("pos", "neg")))
    data = load_task(task, None)
    raw = pd.read_csv(task_dir / "train.csv")
    assert data["train"]["label"] == [("pos", "neg").index(v) for v in raw["sentiment"]]
    assert data["train"].column_names == ["review", "label"] and len(data["validation"]) == 12


@pytest.mark.parametrize(
    "edit,fragment",
    [
        (
            lambda f: f.assign(sentiment=["neg", "meh", "pos"] * 8),
            "bad label 'meh' in row(s) 2, 5, 8, 11, 14 and 3 more; reviews labels are neg, pos (or their ids 0..1)",
        ),
        (
            lambda f: f.assign(sentiment=[0, 1, 5] * 8),
            "bad label 5 in row(s) 3, 6, 9, 12, 15 and 3 more; reviews labels are 0..1",
        ),
        (lambda f: f.head(0), "the split is empty"),
        (lambda f: f.rename(columns={"review": "text"}), "missing column(s) review (columns present: text, sentiment)"),
    ],
)
def test_bad_data_fails_at_load_naming_the_rows(task_dir, edit, fragment):
    task = load_task_file(csv_task(task_dir))
    edit(pd.read_csv(task_dir / "train.csv")).to_csv(task_dir / "train.csv", index=False)
    with pytest.raises(KdbenchError) as err:
        load_task(task, None)
    assert str(err.value).startswith(str(task_dir / "train.csv")) and fragment in str(err.value)


@pytest.mark.parametrize("bad", ["inf", "nan", "lots", ""])
def test_a_regression_label_must_be_a_finite_number(task_dir, bad):
    frame = pd.DataFrame({"a": ["x", "y", "z"], "b": ["u", "v", "w"], "score": ["1.5", bad, "2"]})
    frame.to_json(task_dir / "train.jsonl", orient="records", lines=True)
    frame.to_json(task_dir / "dev.jsonl", orient="records", lines=True)
    path = write(
        task_dir,
        "sim.toml",
        'text = ["a", "b"]\nlabel = "score"\nlabels = "regression"\nmetrics = ["spearman"]\n'
        '[data]\ntrain = "train.jsonl"\nvalidation = "dev.jsonl"\n',
    )
    with pytest.raises(KdbenchError, match=r"train.jsonl: bad label .* in row\(s\) 2; sim labels are finite numbers"):
        load_task(load_task_file(path), None)


def test_every_local_format_loads_the_same_rows(task_dir):
    task = load_task_file(csv_task(task_dir))
    frame = pd.read_csv(task_dir / "train.csv")
    expected = load_task(task, None)["train"].to_dict()
    for suffix, save in (
        ("tsv", lambda p: frame.to_csv(p, sep="\t", index=False)),
        ("jsonl", lambda p: frame.to_json(p, orient="records", lines=True)),
        ("parquet", lambda p: frame.to_parquet(p)),
    ):
        save(task_dir / f"train.{suffix}")
        text = (task_dir / "reviews.toml").read_text().replace("train.csv", f"train.{suffix}")
        other = load_task_file(write(task_dir, f"reviews-{suffix}.toml", text))
        assert load_task(other, None)["train"].to_dict() == expected, suffix


def test_a_hub_task_loads_through_datasets_with_the_hub_faked(task_dir, monkeypatch):
    """A task file naming a hub dataset: kdbench asks `datasets.load_dataset` for each split by the file's names (the
    hub is out of reach here, so the call is answered locally)."""
    import datasets

    asked = []

    def fake_load_dataset(name, config=None, split=None, **kwargs):
        asked.append((name, config, split))
        return datasets.Dataset.from_dict({"question": ["q1", "q2"], "intent": ["greet", "bye"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    path = write(
        task_dir,
        "intents.toml",
        'text = "question"\nlabel = "intent"\nlabels = ["bye", "greet"]\nmetrics = ["accuracy"]\n'
        '[data]\nhub = "org/intents"\nconfig = "en"\ntrain = "train"\nvalidation = ["dev", "test"]\n',
    )
    task = load_task_file(path)
    data = load_task(task, None)
    assert asked == [("org/intents", "en", "train"), ("org/intents", "en", "dev"), ("org/intents", "en", "test")]
    assert task.eval_splits == ("dev", "test") and data["dev"]["label"] == [1, 0]


def test_twenty_classes_distil_and_are_scored_by_macro_f1(bert_teacher, task_dir, tiny_zoo, tmp_path):
    from kdbench.judge.uncertainty import metric_samples
    from kdbench.train.config import DistillConfig
    from kdbench.train.distill import distill

    names = [f"topic{i:02d}" for i in range(20)]
    path = csv_task(task_dir, n=80, labels=tuple(names))
    doc = distill(
        DistillConfig(
            task=str(path),
            student="half_layers",
            teacher=str(bert_teacher),
            students_dir=tiny_zoo,
            output_dir=tmp_path / "run",
            train=FAST,
        ),
        log=lambda *_: None,
    )
    assert set(doc["metrics"]["validation"]) == {"accuracy", "f1_macro"} and doc["metric"] == "accuracy"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task_spec"]["label_names"] == names and recorded_task(config).num_labels == 20
    pred = json.loads((tmp_path / "run" / "predictions.json").read_text())
    answers = pred["splits"]["validation"]
    assert set(answers["labels"]) <= set(range(20)) and len(answers["student"]) == 40
    # the bootstrap's macro F1 is scikit-learn's, resample by resample
    from sklearn.metrics import f1_score

    idx = np.random.default_rng(0).integers(0, 40, size=(5, 40))
    y, p = np.asarray(answers["labels"]), np.asarray(answers["student"])
    fast = metric_samples("f1_macro", y, p, idx)
    assert fast == pytest.approx([f1_score(y[r], p[r], average="macro") for r in idx])


def test_a_long_single_text_states_its_truncation(bert_teacher, task_dir, tiny_zoo, tmp_path):
    from transformers import AutoTokenizer

    from kdbench.train.config import DistillConfig
    from kdbench.train.distill import distill

    path = csv_task(task_dir)
    for split in ("train", "dev"):
        frame = pd.read_csv(task_dir / f"{split}.csv")
        frame["review"] = [" ".join([s] * (6 if i % 2 else 1)) for i, s in enumerate(frame["review"])]  # half long
        frame.to_csv(task_dir / f"{split}.csv", index=False)
    task = load_task_file(path)
    counts: dict = {}
    tok = AutoTokenizer.from_pretrained(bert_teacher)
    tokenized = tokenize(load_task(task, None), task, tok, 16, counts)
    lengths = [len(tok(t)["input_ids"]) for t in pd.read_csv(task_dir / "train.csv")["review"]]
    assert counts["train"] == sum(n > 16 for n in lengths) > 0 and max(tokenized["train"]["length"]) == 16
    said = []
    cfg = DistillConfig(
        task=str(path),
        student="half_layers",
        teacher=str(bert_teacher),
        students_dir=tiny_zoo,
        output_dir=tmp_path / "run",
        train=FAST,  # max_seq_len 16
    )
    doc = distill(cfg, log=said.append)
    assert doc["truncated"] == {"max_seq_len": 16, "rows": counts}
    assert any(f"truncated to 16 tokens: {counts['train']} of 24 train rows" in line for line in said), said


def test_a_csv_task_runs_distil_export_evaluate_and_its_file_may_move(bert_teacher, task_dir, tiny_zoo, tmp_path):
    """The run records the task's definition: export and evaluate rebuild the task from it (the data stay where they
    were; the task file itself may go)."""
    from kdbench.deploy.evaluate import evaluate_run
    from kdbench.deploy.export import ExportConfig, export_run
    from kdbench.train.config import DistillConfig
    from kdbench.train.distill import distill

    path = csv_task(task_dir)
    doc = distill(
        DistillConfig(
            task=str(path),
            student="half_layers",
            teacher=str(bert_teacher),
            students_dir=tiny_zoo,
            output_dir=tmp_path / "run",
            train=FAST,
        ),
        log=lambda *_: None,
    )
    assert doc["task"] == "reviews" and doc["task_spec"]["files"]["train"] == str((task_dir / "train.csv").resolve())
    path.unlink()
    report = export_run(ExportConfig(tmp_path / "run", quantize="int8", parity_samples=8), log=lambda *_: None)
    assert report["fp32"]["passed"]
    scored = evaluate_run(tmp_path / "run", "onnxruntime", "int8")
    assert scored["task"] == "reviews" and set(scored["metrics"]["validation"]) == {"accuracy", "f1_macro"}


def test_a_study_lists_task_files_beside_shipped_names(tmp_path, task_dir, bert_teacher, glue_parquet, tiny_zoo):
    from kdbench.study.cells import cells
    from kdbench.study.spec import load_study

    csv_task(task_dir)
    study_file = tmp_path / "s.yaml"
    study_file.write_text(
        f"teacher: {bert_teacher}\ndata_dir: {glue_parquet}\nstudents_dir: {tiny_zoo}\n"
        "tasks: [rte, task/reviews.toml]\nstudents: [half_layers]\ntrain: {epochs: 1}\n"
    )
    study = load_study(study_file)
    assert study.tasks == ("rte", "reviews") and study.task("reviews").files
    ids = [c.id for c in cells(study)]
    assert "finetune/reviews" in ids and "distill/reviews/half_layers/s42/f1.0" in ids
    study_file.write_text(study_file.read_text().replace("task/reviews.toml", "task/review.toml"))
    with pytest.raises(KdbenchError, match="s.yaml: main.tasks: no such task file"):
        load_study(study_file)


def test_get_task_keeps_the_shipped_names():
    assert get_task("RTE").label_names == ("entailment", "not_entailment")
