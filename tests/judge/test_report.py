"""kdbench report from fixture results: each verdict outcome (holds, does not hold, not enough data) and the files."""

import json

import pytest
from fixtures import TEACHER, blocks, samples, student
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core.errors import KdbenchError
from kdbench.judge.report.inputs import collect
from kdbench.judge.report.sections import pareto
from kdbench.judge.report.write import write_report
from kdbench.measure.result import Cell, ProfileResult

SHAPES = {
    "6L": dict(layers=6),
    "2AH": dict(heads=2, head_dim=384),
    "2AH_pruned": dict(heads=2, pruned=True),
    "3L": dict(layers=3),
    "4AH": dict(heads=4, head_dim=192),
    "384D": dict(hidden=384, head_dim=32, ffn=1536),
}
LATENCY = {
    "teacher": 0.100,
    "6L": 0.050,
    "2AH": 0.100,
    "2AH_pruned": 0.080,
    "3L": 0.026,
    "4AH": 0.100,
    "384D": 0.035,
}


def write_predictions(run, task, share, teacher_score, examples):
    """Per-example answers whose accuracies are the teacher's score and `share` of it: the teacher is right on the
    first examples, the student on fewer of the same ones (a paired comparison, as real runs are)."""
    labels = [i % 2 for i in range(examples)]
    right_t, right_s = round(teacher_score * examples), round(teacher_score * share * examples)
    teacher = [y if i < right_t else 1 - y for i, y in enumerate(labels)]
    student = [y if i < right_s else 1 - y for i, y in enumerate(labels)]
    doc = {"schema": "kdbench.predictions", "task": task, "splits": {}}
    doc["splits"]["validation"] = {"labels": labels, "student": student, "teacher": teacher}
    (run / "predictions.json").write_text(json.dumps(doc))


def write_run(
    root,
    task,
    name,
    share,
    teacher_score=0.9,
    seed=42,
    train_samples=100,
    evals=None,
    parity=None,
    init="teacher",
    examples=2000,
):
    """A finished run's JSON; `examples` per-example predictions (0: none, as runs written before kdbench kept them)."""
    run = root / f"{task}-{name}-s{seed}-n{train_samples}-{init}"
    (run / "student").mkdir(parents=True)
    if examples:
        write_predictions(run, task, share, teacher_score, examples)
    shape = {**TEACHER, "name": name, **SHAPES[name]}
    for variant, score in (evals or {}).items():
        (run / "eval").mkdir(exist_ok=True)
        doc = {"backend": "onnxruntime", "variant": variant, "score": score}
        (run / "eval" / f"onnxruntime-{variant}.json").write_text(json.dumps(doc))
    if parity:
        (run / "onnx").mkdir()
        entries = {
            v: {"path": f"onnx/{v}/model.onnx", "passed": a >= 0.95, "argmax_agreement": a} for v, a in parity.items()
        }
        (run / "onnx" / "parity.json").write_text(json.dumps(entries))
    (run / "metrics.json").write_text(
        json.dumps(
            {
                "schema": "kdbench.distill",
                "schema_version": 1,
                "task": task,
                "student": name,
                "metric": "accuracy",
                "score": teacher_score * share,
                "teacher_score": teacher_score,
                "share_of_teacher": share,
                "student_shape": shape,
                "teacher_shape": {**TEACHER, "name": "teacher"},
                "train_samples": train_samples,
                "config": {"train": {"seed": seed}, "init": init},
            }
        )
    )


def write_profile(path, tasks, latency=LATENCY, grid_batch=1):
    students = {"teacher": student("teacher", "teacher"), "4AH": student("4AH", heads=4, head_dim=192)}
    cells = [
        Cell(n, "torch", "cpu", "fp32", grid_batch, 128, 2, "sdpa", samples(latency[n], seed=i), blocks=blocks())
        for i, n in enumerate(("teacher", "4AH"))
    ]
    for t in tasks:
        for i, n in enumerate(("teacher", *SHAPES)):
            students[f"{t}/{n}"] = student(f"{t}/{n}", **SHAPES.get(n, {}))
            cells.append(
                Cell(
                    f"{t}/{n}",
                    "torch",
                    "cpu",
                    "fp32",
                    grid_batch,
                    128,
                    2,
                    "sdpa",
                    samples(latency[n], seed=10 + i),
                    blocks=blocks(),
                )
            )
    ProfileResult(
        {"cpu": "x"},
        {"threads": 2, "batch_sizes": [grid_batch], "seq_lens": [128], "device": "cpu"},
        TEACHER,
        students,
        tuple(cells),
    ).save(path)


def make_inputs(tmp_path, shares):
    """shares: {task: {student: share}}"""
    for task, by_student in shares.items():
        for name, share in by_student.items():
            write_run(tmp_path / "runs", task, name, share)
    write_profile(tmp_path / "profile.json", list(shares))
    return [tmp_path / "runs", tmp_path / "profile.json"]


PAPER_LIKE = {
    "sst2": {"6L": 0.98, "3L": 0.95, "4AH": 0.90, "384D": 0.95},
    "rte": {"6L": 0.90, "3L": 0.85, "4AH": 0.70, "384D": 0.80},
}


def verdicts(doc):
    return {c["claim"].split(" ")[0] + " " + c["claim"].split(" ")[1]: c["verdict"] for c in doc["claims"]}


def test_paper_like_data_supports_every_claim(tmp_path):
    doc = write_report(make_inputs(tmp_path, PAPER_LIKE), tmp_path / "out")
    v = verdicts(doc)
    assert v == {
        "layer reduction": "holds",
        "fewer attention": "holds",
        "tasks differ": "holds",
        "smaller hidden": "holds",
    }
    png = tmp_path / "out" / "accuracy_vs_latency.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## sst2" in md and "Across tasks" in md and "HOLDS" in md
    assert doc["macro"]["6L"]["macro_share"] == pytest.approx(0.94)
    assert doc["macro"]["6L"]["torch_speedup"] == pytest.approx(2.0, rel=0.03)  # 100 ms teacher, 50 ms student
    assert doc["macro"]["6L"]["grid_point"] == "b1 n128" and doc["macro"]["6L"]["best_onnx"] is None
    assert "3L" in doc["pareto"]["sst2"] and "4AH" not in doc["pareto"]["sst2"]


def test_contrary_data_fails_the_claims(tmp_path):
    contrary = {
        "sst2": {"6L": 0.80, "3L": 0.70, "4AH": 0.95, "384D": 0.99},
        "rte": {"6L": 0.99, "3L": 0.98, "4AH": 0.95, "384D": 0.99},
    }
    v = verdicts(write_report(make_inputs(tmp_path, contrary), tmp_path / "out"))
    assert v["layer reduction"] == "does not hold" and v["fewer attention"] == "does not hold"
    assert v["tasks differ"] == "does not hold" and v["smaller hidden"] == "does not hold"


def test_thin_data_says_not_enough_data_and_names_what_is_missing(tmp_path):
    doc = write_report(make_inputs(tmp_path, {"rte": {"6L": 0.9}}), tmp_path / "out")
    assert set(verdicts(doc).values()) == {"not enough data"}
    assert any("at least two tasks" in c["evidence"] for c in doc["claims"])


def test_pareto_frontier():
    pts = [("a", 10, 0.9), ("b", 5, 0.8), ("c", 12, 0.85), ("d", 5, 0.8)]
    assert pareto(pts) == {"a", "b", "d"}


def test_mixed_grids_are_refused_unless_allowed(tmp_path):
    inputs = make_inputs(tmp_path, PAPER_LIKE)
    write_profile(tmp_path / "other.json", ["sst2"], grid_batch=8)
    with pytest.raises(KdbenchError, match="different grids"):
        collect([*inputs, tmp_path / "other.json"])
    assert collect([*inputs, tmp_path / "other.json"], allow_mixed=True).profiles


def test_cli_bad_inputs(tmp_path):
    runner = CliRunner()
    inputs = make_inputs(tmp_path, PAPER_LIKE)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        ([str(tmp_path / "missing")], "no such file or folder"),
        ([*map(str, inputs), "-o", str(blocker / "out")], "is not a folder"),
    ]
    data = json.loads((tmp_path / "profile.json").read_text())
    (tmp_path / "v9").mkdir()
    (tmp_path / "v9" / "p.json").write_text(json.dumps({**data, "schema_version": 9}))
    cases.append(([str(tmp_path / "v9")], "schema version 9"))
    for args, message in cases:
        result = runner.invoke(app, ["report", *args])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    ok = runner.invoke(app, ["report", *map(str, inputs), "-o", str(tmp_path / "out")])
    assert ok.exit_code == 0 and "HOLDS" in ok.output


def test_seeds_are_averaged_smaller_training_sets_form_a_curve_and_sweeps_get_tables(tmp_path):
    inputs = make_inputs(tmp_path, PAPER_LIKE)
    runs = tmp_path / "runs"
    for seed, share in ((43, 0.86), (44, 0.88)):  # rte/6L has seed 42 at 0.90 from PAPER_LIKE
        write_run(runs, "rte", "6L", share, seed=seed)
    write_run(runs, "rte", "6L", 0.70, train_samples=10)  # a training-set-size point, not a seed
    for name, share in (("2AH", 0.8), ("2AH_pruned", 0.75)):
        write_run(runs, "sst2", name, share)
    doc = write_report(inputs, tmp_path / "out")
    main = {(r["task"], r["student"]): r for r in doc["main"]}
    six = main[("rte", "6L")]
    assert six["seeds"] == [42, 43, 44] and six["score"] == pytest.approx(0.9 * 0.88)
    assert six["score_std"] == pytest.approx(0.9 * 0.02)  # sample std of 0.90, 0.86, 0.88 times the teacher's 0.9
    assert main[("rte", "3L")]["score_std"] is None
    assert doc["train_size"] == {
        "rte/6L": [
            {"train_samples": 10, "score": pytest.approx(0.63), "share": 0.70},
            {"train_samples": 100, "score": pytest.approx(0.81), "share": 0.90},
        ]
    }
    heads = [(h["task"], h["heads"], h["student"]) for h in doc["heads"] if h["task"] == "sst2"]
    assert heads == [("sst2", 2, "2AH"), ("sst2", 2, "2AH_pruned"), ("sst2", 4, "4AH"), ("sst2", 12, "teacher")]
    pruned = next(h for h in doc["heads"] if h["student"] == "2AH_pruned")
    assert pruned["speedup"] == pytest.approx(1.25, rel=0.03) and pruned["p50_ms"] == pytest.approx(80, rel=0.03)
    md = (tmp_path / "out" / "REPORT.md").read_text()
    assert "## Number of heads" in md and "## Training-set size" in md and "## Run-to-run spread" in md
    assert "| rte | 6L | 42, 43, 44 | 0.7920 | 0.0180 |" in md


def test_speed_of_a_shape_measured_on_one_task_serves_the_others_and_deployment_rows(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs, "sst2", "6L", 0.95, evals={"fp32": 0.855, "int8": 0.84}, parity={"fp32": 1.0, "int8": 0.96})
    write_run(runs, "cola", "6L", 0.80)
    write_profile(tmp_path / "profile.json", ["sst2"])
    doc = write_report([runs, tmp_path / "profile.json"], tmp_path / "out")
    cola = next(r for r in doc["main"] if r["task"] == "cola")
    assert cola["speed_from"] == "sst2/6L" and cola["speed"]
    assert "(measured on sst2/6L)" in (tmp_path / "out" / "REPORT.md").read_text()
    (dep,) = doc["deployment"]
    assert dep["student"] == "6L" and dep["torch_score"] == pytest.approx(0.855)
    int8 = dep["variants"]["int8"]
    assert int8["delta"] == pytest.approx(-0.015) and int8["agreement"] == 0.96 and int8["p50_ms"] is None
    assert dep["variants"]["fp32"]["delta"] == pytest.approx(0.0)


def test_a_recipe_change_is_labelled_and_kept_out_of_the_claims(tmp_path):
    from kdbench.train.config import DistillConfig

    assert DistillConfig.recipe_defaults() == {  # the paper's recipe, which the report compares runs against
        "init": "teacher",
        "alpha_hard": 0.33,
        "alpha_soft": 0.33,
        "alpha_feature": 0.33,
        "temperature": 2.0,
        "feature_loss": "mse",
    }
    inputs = make_inputs(tmp_path, PAPER_LIKE)
    write_run(tmp_path / "runs", "sst2", "384D", 0.20, init="slice")  # would break "smaller hidden ... moderate"
    doc = write_report(inputs, tmp_path / "out")
    sliced = next(r for r in doc["main"] if r["recipe"])
    assert sliced["student"] == "384D [init slice]" and sliced["speed_from"] == "sst2/384D"
    assert verdicts(doc)["smaller hidden"] == "holds"
    assert "| 384D [init slice] |" in (tmp_path / "out" / "REPORT.md").read_text()
    # the terminal table too: rich reads "[init slice]" as markup unless the label is escaped
    from rich.console import Console

    from kdbench.judge.render import macro_table

    console = Console(record=True, width=200)
    console.print(macro_table(doc["macro"]))
    shown = [ln.split("│")[1].strip() for ln in console.export_text().splitlines() if "384D" in ln]
    assert sorted(shown) == ["384D", "384D [init slice]"]


def test_above_chance_is_the_share_of_the_teachers_margin_over_the_majority_class(tmp_path):
    inputs = make_inputs(tmp_path, {"rte": {"6L": 0.95, "3L": 0.70}})  # teacher 0.9
    doc = write_report(inputs, tmp_path / "out", baselines={"rte": 0.6})
    rows = {r["student"]: r for r in doc["main"]}
    assert rows["6L"]["share_above_chance"] == pytest.approx((0.855 - 0.6) / (0.9 - 0.6))
    assert rows["3L"]["share_above_chance"] == pytest.approx((0.63 - 0.6) / 0.3)  # 70 % of the score, 10 % above chance
    assert doc["macro"]["3L"]["macro_share_above_chance"] == pytest.approx(0.1)
    write_run(tmp_path / "runs", "wnli", "3L", 0.5)  # a task whose teacher (0.9) is no better than chance (0.95)
    doc = write_report(inputs, tmp_path / "out", baselines={"rte": 0.6, "wnli": 0.95})
    assert doc["macro"]["3L"]["macro_share_above_chance"] == pytest.approx(0.1)  # over the tasks with a margin
    md = (tmp_path / "out" / "REPORT.md").read_text().split("## rte")[1]
    row = next(ln for ln in md.splitlines() if ln.startswith("| 3L | 0.0 |"))
    assert "| 0.9000 | 70.0% [" in row and "] | 10.0% |" in row
    plain = write_report(inputs, tmp_path / "plain")
    assert plain["main"][0]["share_above_chance"] is None
    assert write_report(inputs, tmp_path / "flat", baselines={"rte": 0.95})["main"][0]["share_above_chance"] is None
    thin = write_report(inputs, tmp_path / "thin", baselines={"rte": 0.86})  # a 4-point margin is not measured
    assert thin["main"][0]["share_above_chance"] is None


def test_claims_say_how_sure_they_are(tmp_path):
    """The same point estimates give HOLDS with 2,000 evaluation examples per task, INCONCLUSIVE with 30 (the
    resamples disagree), and INCONCLUSIVE, with the point-estimate verdict shown, when runs have no predictions."""
    many = verdicts(write_report(make_inputs(tmp_path / "many", PAPER_LIKE), tmp_path / "many" / "out"))
    assert many["layer reduction"] == "holds"
    layer = _layer_claim(tmp_path / "few", examples=30)
    assert layer["verdict"] == "inconclusive" and "bootstrap resamples" in layer["evidence"]
    layer = _layer_claim(tmp_path / "none", examples=0)
    assert layer["verdict"] == "inconclusive" and "point estimates say HOLDS" in layer["evidence"]
    assert "have no per-example predictions" in layer["evidence"]


def _layer_claim(root, examples: int) -> dict:
    """The layer-reduction claim of a paper-like study whose runs hold `examples` per-example predictions each."""
    for task, by_student in PAPER_LIKE.items():
        for name, share in by_student.items():
            write_run(root / "runs", task, name, share, examples=examples)
    write_profile(root / "profile.json", list(PAPER_LIKE))
    doc = write_report([root / "runs", root / "profile.json"], root / "out")
    return next(c for c in doc["claims"] if c["claim"].startswith("layer reduction"))


def test_scores_and_shares_carry_paired_bootstrap_intervals(tmp_path):
    doc = write_report(make_inputs(tmp_path, PAPER_LIKE), tmp_path / "out")
    row = next(r for r in doc["main"] if r["task"] == "rte" and r["student"] == "4AH")
    low, high = row["share_ci"]
    assert low < 0.70 < high and high - low < 0.1  # 2,000 paired examples: a few points wide
    assert row["score_ci"][0] < row["score"] < row["score_ci"][1]
    assert "[" in (tmp_path / "out" / "REPORT.md").read_text().split("## rte")[1]
