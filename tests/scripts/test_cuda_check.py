"""scripts/cuda_check.sh on a machine without a GPU: it must parse, plan, and fail cleanly (status 2, one line)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import make_result

from kdbench.judge.verdict import head_claim, head_verdicts

ROOT = Path(__file__).resolve().parents[2]


def run(*args, script="scripts/cuda_check.py"):
    cmd = ["bash", script, *args] if script.endswith(".sh") else [sys.executable, script, *args]
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


def load_script():
    spec = importlib.util.spec_from_file_location("cuda_check", ROOT / "scripts" / "cuda_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_dry_run_plans_the_whole_grid(tmp_path):
    r = run(str(tmp_path / "out"), "--dry-run", script="scripts/cuda_check.sh")
    assert r.returncode == 0, r.stderr
    assert "plan: phases ceilings, steps, compile, trace, ort, study, zoo" in r.stdout and "dry run" in r.stdout
    assert (
        "ort: teacher, 3L, 6L, 4AH, 4AH_pruned, 8AH on onnxruntime, onnxruntime:fp16 (fp32), batch 1, 32, 256, "
        "length 128 with IO binding" in r.stdout
    )
    assert "ort: teacher, 3L, 6L, 4AH, 4AH_pruned, 8AH on torch, torch-compile (bf16)" in r.stdout
    assert "19 models x 2 dtypes" in r.stdout
    assert "compile: teacher, 3L, 4AH, 4AH_pruned on torch and torch-compile (CUDA graphs)" in r.stdout
    assert "trace: teacher, 9L, 384D, 8AH, 4AH at bf16, batch 32, 1" in r.stdout
    assert not (tmp_path / "out").exists()


def test_phases_are_checked_by_name(tmp_path):
    r = run(str(tmp_path / "out"), "--dry-run", "--phases", "ceilings,compil")
    assert r.returncode == 2 and "did you mean 'compile'" in r.stderr and "Traceback" not in r.stderr
    r = run(str(tmp_path / "out"), "--dry-run", "--phases", "compile,trace")
    assert r.returncode == 0 and "zoo profile" not in r.stdout and "plan: compile" in r.stdout


SHARED_GLUE = ROOT.parent / "shared" / "glue"


@pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="needs ../shared/glue")
def test_dry_run_plans_the_full_recipe_study_and_its_carried_size(tmp_path, bert_teacher):
    out = tmp_path / "out"
    r = run(str(out), "--dry-run", "--teacher", str(bert_teacher), "--data", str(SHARED_GLUE), "--study-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert "study cuda-full-recipe: 4 finetune, 24 distill, 1 profile cells on rte, mrpc, stsb, cola" in r.stdout
    carried = float(r.stdout.split("plan: carried ")[1].split(" MiB")[0])
    # the repo, the wheels, this tiny teacher and four tasks; the real fp16 MiniLM adds ~45 MiB to it
    assert 0 < carried < 64 - 46, carried
    assert not (out / "runs").exists()  # a dry run trains nothing


def test_dry_run_checks_the_carried_data(tmp_path, bert_teacher):
    r = run(str(tmp_path / "out"), "--dry-run", "--teacher", str(bert_teacher), "--data", str(tmp_path / "none"))
    assert r.returncode == 2 and "none is not a folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run(str(tmp_path / "out"), "--dry-run", "--teacher", str(bert_teacher), "--data", str(tmp_path / "empty"))
    assert r.returncode == 2 and "has no train split for rte" in r.stderr
    assert not (tmp_path / "out").exists()  # checked before anything is written


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_without_a_gpu_it_fails_with_one_line(tmp_path):
    r = run(str(tmp_path / "out"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "cuda_check.json").exists()


def test_shell_wrapper_without_arguments_prints_usage():
    r = run(script="scripts/cuda_check.sh")
    assert r.returncode == 2 and "usage" in r.stderr


def test_achieved_tflops_and_markdown_from_a_result():
    mod = load_script()
    result = make_result({"teacher": 0.002, "4AH": 0.002, "4AH_pruned": 0.0016})
    rows = mod.achieved_rows(result, ceiling_tflops=100.0)
    teacher = next(r for r in rows if r["student"] == "teacher")
    assert teacher["tflops"] == pytest.approx(1e9 / 0.002 / 1e12, rel=0.05)  # 1 GFLOP per sequence, batch 1
    assert teacher["share_of_bf16_ceiling"] == pytest.approx(teacher["tflops"] / 100.0)
    lines = head_verdicts(result)
    md = mod.markdown(
        {"gpu": {"name": "Test GPU"}, "versions": {}},
        {"bf16_matmul_tflops": 100.0, "matmul_n": 8, "d2d_copy_gbps": 1000.0},
        rows,
        lines,
        head_claim(lines),
    )
    assert "# CUDA check: Test GPU" in md and "| 4AH | torch | fp32 | 1 | 192 |" in md
    steps = mod.steps_markdown(
        [
            {
                "kind": "distill",
                "teacher": "t",
                "model": "6L",
                "batch_size": 12,
                "p50_s": 0.01,
                "samples_per_s": 1200.0,
                "tflops": 5.0,
                "mfu": 0.01,
            }
        ]
    )
    assert "| distill | t | 6L | 12 | 10.0 | 1200 | 5.0 | 1.0% |" in steps


def test_pack_keeps_results_and_leaves_weights_out(tmp_path):
    mod = load_script()
    out, study = tmp_path / "out", tmp_path / "study"
    run_dir = study / "runs" / "rte" / "6L-s42-f1.0"
    for f in (
        out / "cuda_check.json",
        run_dir / "metrics.json",
        run_dir / "student" / "config.json",
        run_dir / "student" / "model.safetensors",
        run_dir / "checkpoints" / "checkpoint-1" / "trainer_state.json",
        study / "REPORT.md",
    ):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("{}")
    import tarfile

    names = set(tarfile.open(mod.pack(out, study, None)).getnames())
    assert names == {"check/cuda_check.json", "study/runs/rte/6L-s42-f1.0/metrics.json", "study/REPORT.md"}


def test_compile_summary_sets_compiled_beside_eager_and_judges_heads_per_engine():
    from dataclasses import replace

    from fixtures import samples

    eager = make_result({"teacher": 0.004, "4AH": 0.004, "4AH_pruned": 0.0035})
    fast = {"teacher": 0.002, "4AH": 0.002, "4AH_pruned": 0.0015}
    compiled = tuple(
        replace(
            c,
            backend="torch-compile",
            attn_impl="inductor+cudagraphs:sdpa",
            samples=samples(fast[c.student]),
            first_call_s=12.5,
        )
        for c in eager.cells
    )
    out = load_script().compile_summary([replace(eager, cells=eager.cells + compiled)])
    teacher = next(r for r in out["rows"] if r["student"] == "teacher")
    assert teacher["compiled_p50_ms"] == pytest.approx(2.0, rel=0.02) and teacher["eager_p50_ms"] == pytest.approx(
        4.0, rel=0.02
    )
    assert teacher["compiled_over_eager"].startswith("2.0") and teacher["first_call_s"] == 12.5
    assert {v["backend"] for v in out["head_verdict"]} == {"torch", "torch-compile"}
    assert (
        "| 4AH_pruned | 1 | 3.50 | 1.50 |" in out["markdown"]
        and "| 4AH | torch-compile | fp32 | 1 |" in out["markdown"]
    )
    assert out["batches"] == [1]


TINY_STUDY = """
name: tiny-continued
teacher: {teacher}
data_dir: {data}
students_dir: {zoo}
tasks: [rte]
students: [half_layers, two_heads_pruned]
seeds: [7]
train: {{epochs: 1, batch_size: 8, max_seq_len: 16, learning_rate: 0.001}}
sweeps:
  - name: init-slice
    tasks: [rte]
    students: [narrow]
    distill: {{init: slice}}
profile: {{task: rte, batch_sizes: [1], seq_lens: [16], warmup_runs: 1, warmup_time_s: 0, min_runs: 3, min_time_s: 0}}
output_dir: {out}
"""


def test_a_later_call_continues_from_the_packed_results_of_an_earlier_one(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo
):
    import json
    import tarfile

    from kdbench.core.errors import KdbenchError
    from kdbench.results.run import Run
    from kdbench.study.cells import cells
    from kdbench.study.report import write_study_report
    from kdbench.study.runner import run_study
    from kdbench.study.spec import load_study

    mod = load_script()

    def study_in(out):
        path = tmp_path / f"{out}.yaml"
        path.write_text(TINY_STUDY.format(teacher=bert_teacher, data=glue_parquet, zoo=tiny_zoo, out=tmp_path / out))
        return load_study(path)

    first = study_in("first")
    run_study(first, only="distill/rte/half_layers/s7/f1.0")
    run_study(first, only="distill/rte/two_heads_pruned/s7/f1.0")
    mod.close_the_study(first)  # times the two finished profiled runs, as the first GPU call's close did
    # what came back from the device: the packed JSON, no weights; unpacked as reports/cuda holds it
    (tmp_path / "check").mkdir()
    with tarfile.open(mod.pack(tmp_path / "check", first.output_dir, None)) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    source = tmp_path / "back" / "study"
    assert not (source / "runs" / "rte" / "half_layers-s7-f1.0" / "student").exists()

    second = study_in("second")
    pairs = mod.carried_runs(second, source)
    assert sorted(dst.name for _, dst in pairs) == ["half_layers-s7-f1.0", "two_heads_pruned-s7-f1.0"]
    assert not second.output_dir.exists()  # planning reads only
    assert mod.seed_study(second, pairs, source) == 2
    timed = json.loads((second.output_dir / "profile.json").read_text())["settings"]["runs"]
    assert all(str(second.output_dir) in r for r in timed)  # the profile's runs moved with the study
    pending = [c.id for c in cells(second) if not c.done()]
    assert pending == ["distill/rte/narrow/s42/f1.0-init-slice"]  # the teacher is cached; the rest was carried
    assert run_study(second) == pending  # only the missing distillation trains
    mod.close_the_study(second)  # the carried profile covers every profiled run: nothing re-timed without weights
    assert (second.output_dir / "REPORT.md").is_file() and write_study_report(second)
    assert Run(second.output_dir / "runs" / "rte" / "half_layers-s7-f1.0").metrics()["score"] is not None
    (source / "teachers").mkdir()
    (source / "teachers" / "rte.json").write_text(json.dumps({"task": "rte", "score": 0.25}))
    repeats = mod.teacher_repeats(second, source)
    assert repeats["rte"]["carried"] == 0.25 and isinstance(repeats["rte"]["this_call"], float)

    # one profiled run missing from the source: the other trains again too, so the profile can time both
    third = study_in("third")
    lone = source / "runs" / "rte" / "two_heads_pruned-s7-f1.0"
    (lone / "metrics.json").rename(lone / "metrics.json.bak")
    assert mod.carried_runs(third, source) == []
    (lone / "metrics.json.bak").rename(lone / "metrics.json")
    # a run trained with another recipe is refused, naming the field
    cfg = lone / "config.json"
    doc = json.loads(cfg.read_text())
    doc["train"]["epochs"] = 3
    cfg.write_text(json.dumps(doc))
    with pytest.raises(KdbenchError, match="epochs 3 -> 1"):
        mod.carried_runs(third, source)
    assert not third.output_dir.exists()


def test_compile_and_trace_phases_run_end_to_end_on_cpu(tmp_path, tiny_teacher, tiny_zoo, monkeypatch):
    """The phases' own code on a CPU with tiny models: only the device and the models differ from the GPU call."""
    mod = load_script()
    tiny = dict(teacher=str(tiny_teacher), students_dir=tiny_zoo, device="cpu", dtypes=("fp32",), seq_lens=(16,))
    monkeypatch.setattr(
        mod, "COMPILE", {**mod.COMPILE, **tiny, "students": "two_heads", "min_runs": 3, "warmup_runs": 1}
    )
    monkeypatch.setattr(mod, "COMPILE_BATCHES", (2, 1))
    monkeypatch.setattr(mod, "TRACE", {**mod.TRACE, **tiny, "students": "half_layers", "batch_sizes": (2,)})
    import time

    # 0.5 s: the first batch size alone times 4 cells for min_time_s (0.2 s) each, so the second does not start
    out = mod.run_compile(tmp_path, until=time.time() + 0.5)
    assert out["batches"] == [2] and (tmp_path / "profile-cuda-compile-b2.json").is_file()
    assert not (tmp_path / "profile-cuda-compile-b1.json").exists()
    assert {r["student"] for r in out["rows"]} == {"teacher", "two_heads"} and all(
        r["first_call_s"] > 0 for r in out["rows"]
    )
    assert "## torch.compile (CUDA graphs) against eager" in out["markdown"]
    traced = mod.run_trace(tmp_path)
    assert [(t["model"], t["batch_size"]) for t in traced["traces"]] == [("teacher", 2), ("half_layers", 2)]
    assert "## Kernel trace" in traced["markdown"]
