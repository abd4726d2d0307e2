"""Data-parallel distillation proven on CPU: `torchrun --nproc_per_node 2 -m kdbench distill` (gloo) against one
process with the same global batch. Slow (two torch processes start): run with `-m slow`."""

import json
import os
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ARGS = ["--task", "rte", "--student", "half_layers", "--epochs", "2", "--batch-size", "8", "--max-seq-len", "16"]
ARGS += ["--learning-rate", "1e-3", "--seed", "7"]


def _distill(nproc: int, teacher, data, zoo, out, *extra, expect_ok: bool = True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "TOKENIZERS_PARALLELISM": "false"}
    base = [*ARGS, "--teacher", str(teacher), "--data-dir", str(data), "--students-dir", str(zoo)]
    if "--resume" in extra:  # a resumed run takes its recipe from the run folder
        base = []
    if nproc == 1:
        cmd = [sys.executable, "-m", "kdbench", "distill", *base, "--output-dir", str(out), *extra]
    else:
        torchrun = shutil.which("torchrun") or f"{sys.executable} -m torch.distributed.run"
        cmd = [*torchrun.split(), "--standalone", "--nproc_per_node", str(nproc), "-m", "kdbench", "distill"]
        cmd += [*base, "--output-dir", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0 or not expect_ok, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    from kdbench.train.config import TrainConfig
    from kdbench.train.finetune import finetune

    # the teacher is fine-tuned once and cached: both runs distil from the very same teacher
    train = TrainConfig(epochs=2, batch_size=8, max_seq_len=16, learning_rate=1e-3, seed=7)
    finetune(str(bert_teacher), "rte", train, glue_parquet, log=lambda *_: None, progress=False)
    one = tmp_path / "one"
    two = tmp_path / "two"
    _distill(1, bert_teacher, glue_parquet, tiny_zoo, one)
    done = _distill(2, bert_teacher, glue_parquet, tiny_zoo, two)
    a = json.loads((one / "metrics.json").read_text())
    b = json.loads((two / "metrics.json").read_text())
    assert a["processes"] == 1 and b["processes"] == 2
    # the same global batch: the same number of optimizer steps over the same rows
    assert a["optimizer_steps"] == b["optimizer_steps"] == 6  # 24 rows / 8 per step x 2 epochs
    assert a["train_samples"] == b["train_samples"] == 24
    # the same recipe on a different split of each batch: close, not equal (dropout and data order differ per rank)
    loss_a, loss_b = a["epochs"][-1]["eval_loss"], b["epochs"][-1]["eval_loss"]
    assert abs(loss_a - loss_b) <= 0.25 * max(loss_a, loss_b), (loss_a, loss_b)
    # only the first process wrote: one summary line, one set of files
    assert done.stdout.count("run folder") == 1
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())


def test_a_two_process_run_stopped_by_its_time_limit_resumes(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    """Both processes stop at the same step (they agree on the deadline), the first writes the checkpoint, and
    --resume on two processes finishes with the steps of an uninterrupted run."""
    from kdbench.results.run import INTERRUPTED, Run
    from kdbench.train.config import TrainConfig
    from kdbench.train.finetune import finetune

    train = TrainConfig(epochs=2, batch_size=8, max_seq_len=16, learning_rate=1e-3, seed=7)
    finetune(str(bert_teacher), "rte", train, glue_parquet, log=lambda *_: None, progress=False)
    out = tmp_path / "run"
    stopped = _distill(2, bert_teacher, glue_parquet, tiny_zoo, out, "--time-limit", "0.001s", expect_ok=False)
    assert stopped.returncode != 0 and "stopped at the deadline" in stopped.stderr
    assert Run(out).state() == INTERRUPTED
    done = _distill(2, bert_teacher, glue_parquet, tiny_zoo, out, "--resume")
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["resumed"] and doc["processes"] == 2 and doc["optimizer_steps"] == 6
    assert done.stdout.count("run folder") == 1
