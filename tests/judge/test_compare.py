"""kdbench compare on fixture result files: the gate's logic and its exit codes."""

import json

import numpy as np
import pytest
from fixtures import make_result, student
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core.errors import KdbenchError
from kdbench.judge.compare import compare, parse_overrides, parse_percent, read_results

runner = CliRunner()
STUDENTS = {
    "teacher": student("teacher", "teacher"),
    "3L": student("3L", layers=3, flops=0.25),
    "6L": student("6L", layers=6, flops=0.5),
}


def result_file(tmp_path, name, latencies, spread=0.01, scale=1.0, seed=0):
    res = make_result({k: v * scale for k, v in latencies.items()}, STUDENTS)
    if spread != 0.01 or seed:
        from dataclasses import replace

        from fixtures import samples

        res = replace(
            res,
            cells=tuple(
                replace(c, samples=samples(latencies[c.student] * scale, spread=spread, seed=seed + i))
                for i, c in enumerate(res.cells)
            ),
        )
    path = tmp_path / name
    res.save(path)
    return path


BASE = {"teacher": 0.100, "3L": 0.025, "6L": 0.050}


def rows_for(tmp_path, current, **kw):
    _, b = read_results(result_file(tmp_path, "b.json", BASE))
    _, c = read_results(
        result_file(
            tmp_path,
            "c.json",
            current,
            seed=kw.pop("seed", 5),
            spread=kw.pop("spread", 0.01),
            scale=kw.pop("scale", 1.0),
        )
    )
    return {r.student: r for r in compare(b, c, **kw)}


def test_no_change_is_ok(tmp_path):
    rows = rows_for(tmp_path, BASE)
    assert {r.verdict for r in rows.values()} == {"ok"} and set(rows) == {"3L", "6L"}


def test_clear_regression(tmp_path):
    rows = rows_for(tmp_path, {**BASE, "3L": 0.030})
    assert rows["3L"].verdict == "regression" and rows["3L"].change == pytest.approx(1.2, rel=0.02)
    assert rows["3L"].low > 1 and rows["6L"].verdict == "ok"


def test_a_change_inside_noise_is_not_a_regression():
    from kdbench.judge.compare import Measured

    grid = ("cpu", "torch", "fp32", 1, 128)
    wide = np.array([0.6, 0.75, 0.9, 1.0, 1.1, 1.25, 1.4])  # run-to-run spread of +-40 %
    teacher = Measured("teacher", grid, "r", tuple(0.1 * (1 + 0.001 * np.arange(7))))
    base = {("teacher", *grid): [teacher], ("3L", *grid): [Measured("3L", grid, "r", tuple(0.025 * wide))]}
    cur = {("teacher", *grid): [teacher], ("3L", *grid): [Measured("3L", grid, "r", tuple(0.025 * 1.14 * wide))]}
    row = compare(base, cur)[0]
    assert row.change == pytest.approx(1.14) and row.low <= 1 and row.verdict == "inside noise"


def test_improvement(tmp_path):
    assert rows_for(tmp_path, {**BASE, "6L": 0.040})["6L"].verdict == "improvement"


def test_ratio_mode_ignores_a_machine_that_is_slower_everywhere(tmp_path):
    rows = rows_for(tmp_path, BASE, scale=1.5)
    assert {r.verdict for r in rows.values()} == {"ok"}
    assert rows["3L"].change == pytest.approx(1.0, abs=0.02)
    absolute = rows_for(tmp_path, BASE, scale=1.5, ratio=False)
    assert absolute["3L"].verdict == "regression" and "teacher" in absolute


def test_per_student_thresholds(tmp_path):
    rows = rows_for(tmp_path, {**BASE, "3L": 0.030}, overrides=parse_overrides(["3L=30%"]))
    assert rows["3L"].verdict == "ok" and rows["3L"].threshold == 0.30


def test_incomparable_inputs(tmp_path):
    _, b = read_results(result_file(tmp_path, "b.json", BASE))
    _, c = read_results(result_file(tmp_path, "c.json", {"teacher": 0.1, "3L": 0.025}))
    with pytest.raises(KdbenchError, match="grids differ"):
        compare(b, c)
    assert len(compare(b, c, allow_partial=True)) == 1
    _, other = read_results(result_file(tmp_path, "o.json", {"teacher": 0.1}))
    with pytest.raises(KdbenchError, match="share no cell"):
        compare(b, {("x", "y"): next(iter(other.values()))})
    no_teacher = {k: v for k, v in b.items() if k[0] != "teacher"}
    with pytest.raises(KdbenchError, match="no teacher measured"):
        compare(b, no_teacher, allow_partial=True)


def _pytest_benchmark_doc(latencies, with_data):
    rng = np.random.default_rng(0)
    benches = []
    for name, m in latencies.items():
        data = list(m * (1 + 0.01 * rng.standard_normal(20)))
        stats = {
            "min": min(data),
            "max": max(data),
            "mean": float(np.mean(data)),
            "stddev": float(np.std(data)),
            "median": float(np.median(data)),
            "rounds": 20,
        }
        if with_data:
            stats["data"] = data
        benches.append(
            {
                "name": f"test_inference[{name}-torch]",
                "group": "torch",
                "stats": stats,
                "extra_info": {"student": name, "grid": ["cpu", "torch", "fp32", 1, 32]},
            }
        )
    return {"machine_info": {}, "benchmarks": benches, "version": "5.2.3"}


def test_run_to_run_noise_of_a_several_run_baseline_widens_the_interval(tmp_path):
    folder = tmp_path / "base"
    folder.mkdir()
    for i, shift in enumerate((0.92, 1.0, 1.15, 0.95, 1.05)):  # runs that differ by up to 15 %
        result_file(folder, f"run{i}.json", {**BASE, "3L": 0.025 * shift}, seed=10 * i)
    _, base = read_results(folder)
    _, one = read_results(folder / "run0.json")
    _, cur = read_results(result_file(tmp_path, "c.json", {**BASE, "3L": 0.025 * 1.12}, seed=99))
    several = {r.student: r for r in compare(base, cur)}["3L"]
    single = {r.student: r for r in compare(one, cur)}["3L"]
    assert len(base[("3L", "cpu", "torch", "fp32", 1, 128)]) == 5
    assert several.high - several.low > 2 * (single.high - single.low)
    assert several.verdict == "inside noise" and single.verdict == "regression"


@pytest.mark.parametrize("with_data", [True, False])
def test_pytest_benchmark_files_go_through_the_same_gate(tmp_path, with_data):
    (tmp_path / "b.json").write_text(json.dumps(_pytest_benchmark_doc(BASE, with_data)))
    (tmp_path / "c.json").write_text(json.dumps(_pytest_benchmark_doc({**BASE, "3L": 0.03}, with_data)))
    kind, b = read_results(tmp_path / "b.json")
    _, c = read_results(tmp_path / "c.json")
    rows = {r.student: r for r in compare(b, c)}
    assert kind == "pytest-benchmark" and rows["3L"].verdict == "regression" and rows["6L"].verdict == "ok"


def test_percentages():
    assert parse_percent("10%") == pytest.approx(0.10) and parse_percent("0.1") == pytest.approx(0.10)
    assert parse_percent("25") == pytest.approx(0.25)
    for bad in ("ten", "-5%", "0"):
        with pytest.raises(KdbenchError):
            parse_percent(bad)
    with pytest.raises(KdbenchError, match="STUDENT=PERCENT"):
        parse_overrides(["3L"])


# ------------------------------------------------------------------------------------------------------- the CLI
def invoke(*args):
    return runner.invoke(app, ["compare", *map(str, args)])


def test_exit_codes(tmp_path):
    b = result_file(tmp_path, "b.json", BASE)
    same = result_file(tmp_path, "same.json", BASE, seed=3)
    slow = result_file(tmp_path, "slow.json", {**BASE, "3L": 0.030}, seed=3)
    ok = invoke(b, same, "--json", tmp_path / "cmp.json")
    assert ok.exit_code == 0 and "no regression" in ok.output
    assert json.loads((tmp_path / "cmp.json").read_text())["schema"] == "kdbench.compare"
    bad = invoke(b, slow)
    assert bad.exit_code == 1 and "1 regression(s)" in bad.output and "3L" in bad.output
    assert invoke(b, slow, "--threshold", "3L=50%").exit_code == 0
    folder = tmp_path / "folder"
    folder.mkdir()
    slow.rename(folder / "slow.json")
    assert invoke(b, folder).exit_code == 1


@pytest.mark.parametrize(
    "setup,args_fn,message",
    [
        (None, lambda p, b: [b, p / "missing.json"], "no such file or folder"),
        ("notjson", lambda p, b: [b, p / "x.json"], "is not valid JSON"),
        ("foreign", lambda p, b: [b, p / "x.json"], "neither a kdbench profile result nor a pytest-benchmark"),
        (None, lambda p, b: [b, b, "--max-slowdown", "lots"], "--max-slowdown takes a percentage"),
        (None, lambda p, b: [b, b, "--stat", "p42"], "--stat is 'p42'"),
        (None, lambda p, b: [b, b, "--threshold", "9L=5%"], "not in both results: 9L"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, setup, args_fn, message):
    b = result_file(tmp_path, "b.json", BASE)
    if setup == "notjson":
        (tmp_path / "x.json").write_text("{oops")
    if setup == "foreign":
        (tmp_path / "x.json").write_text('{"hello": 1}')
    result = invoke(*args_fn(tmp_path, b))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert message in " ".join(result.output.split())


def test_mixed_kinds_are_refused(tmp_path):
    b = result_file(tmp_path, "b.json", BASE)
    (tmp_path / "pb.json").write_text(json.dumps(_pytest_benchmark_doc(BASE, True)))
    result = invoke(b, tmp_path / "pb.json")
    assert result.exit_code == 2 and "cannot compare kdbench results" in result.output
