"""scripts/cuda_check.sh on a machine without a GPU: it must parse, plan, and fail cleanly (status 2, one line)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fixtures import make_result

from kdbench.verdict import head_claim, head_verdicts

ROOT = Path(__file__).resolve().parent.parent


def run(*args, script="scripts/cuda_check.py"):
    cmd = ["bash", script, *args] if script.endswith(".sh") else [sys.executable, script, *args]
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )


def test_dry_run_plans_the_whole_grid(tmp_path):
    r = run(str(tmp_path / "out"), "--dry-run", script="scripts/cuda_check.sh")
    assert r.returncode == 0, r.stderr
    assert "plan:" in r.stdout and "19 models x 2 dtypes" in r.stdout and "dry run" in r.stdout
    assert "training steps" in r.stdout


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
    spec = importlib.util.spec_from_file_location("cuda_check", ROOT / "scripts" / "cuda_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
    assert "# CUDA check: Test GPU" in md and "| 4AH | fp32 | 1 | 192 |" in md
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
    spec = importlib.util.spec_from_file_location("cuda_check", ROOT / "scripts" / "cuda_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
