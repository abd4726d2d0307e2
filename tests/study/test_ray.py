"""The Ray executor on a real local Ray cluster (no mocks): the same cells and metrics as the local executor, a worker
killed mid-distillation retried until the study finishes, nothing scheduled twice, and a two-node cluster."""

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from helpers import STUDY  # noqa: E402

from kdbench.study.cells import cells  # noqa: E402
from kdbench.study.runner import run_study  # noqa: E402
from kdbench.study.spec import load_study  # noqa: E402

TINY = STUDY.replace("export: {{quantize: int8, parity_samples: 8}}\n", "")


@pytest.fixture(autouse=True)
def _loopback(monkeypatch):
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray nodes on 127.0.0.1 only
    monkeypatch.setenv("RAY_DEDUP_LOGS", "0")
    yield
    if ray.is_initialized():
        ray.shutdown()


def _study(root: Path, teacher, data, zoo):
    root.mkdir(parents=True, exist_ok=True)
    path = root / "study.yaml"
    path.write_text(TINY.format(teacher=teacher, data=data, zoo=zoo, epochs=2))
    return load_study(path)


def _scores(root: Path) -> dict[str, float]:
    return {
        str(p.parent.relative_to(root)): json.loads(p.read_text())["score"]
        for p in sorted((root / "out" / "runs").rglob("metrics.json"))
    }


def test_ray_runs_the_same_cells_with_the_same_results_and_a_rerun_schedules_nothing(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo, monkeypatch
):
    local = _study(tmp_path / "local", bert_teacher, glue_parquet, tiny_zoo)
    on_ray = _study(tmp_path / "ray", bert_teacher, glue_parquet, tiny_zoo)
    # one thread per training on both sides (the local executor's jobs=2 on 2 cores; a Ray task's one CPU), so the
    # arithmetic - and the scores - are the same; each side fine-tunes its own teacher into its own cache
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache-local"))
    ran_local = run_study(local, jobs=2)
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache-ray"))
    seen = []
    ran_ray = run_study(on_ray, executor="ray", progress=lambda *a: seen.append(a))
    assert sorted(ran_local) == sorted(ran_ray) == sorted(c.id for c in cells(local))
    assert _scores(tmp_path / "local") == _scores(tmp_path / "ray")
    assert seen and seen[0][2] == len(ran_ray)  # progress counts every cell
    log = tmp_path / "ray" / "out" / "study-log"
    assert all((log / f"{c}.log").is_file() for c in ran_ray if c != "profile")  # one log per cell
    assert (tmp_path / "ray" / "out" / "REPORT.md").is_file()
    assert run_study(on_ray, executor="ray") == []  # complete: nothing is scheduled again
    assert run_study(on_ray) == []  # and the local executor agrees: the same completion files


@pytest.mark.slow
def test_a_worker_killed_mid_distillation_is_retried_and_the_study_finishes(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo, monkeypatch
):
    marker = tmp_path / "killed-once"
    monkeypatch.setenv("KDBENCH_KILL_ONCE", str(marker))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(Path(__file__).parent / "ray_kill"), os.environ.get("PYTHONPATH", "")])
    )
    study = _study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
    ran = run_study(study, executor="ray")
    assert marker.exists()  # a worker did die after its first checkpoint
    assert sorted(ran) == sorted(c.id for c in cells(study)) and all(c.done() for c in cells(study))


@pytest.mark.slow
def test_a_two_node_cluster_runs_the_study(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        study = _study(tmp_path, bert_teacher, glue_parquet, tiny_zoo)
        ray.init(address=cluster.address)
        ran = run_study(study, executor="ray")
        assert sorted(ran) == sorted(c.id for c in cells(study))
        records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "study-log").rglob("*.json")]
        nodes = {r["node"] for r in records if r["kind"] == "distill"}
        assert len(nodes) == 2  # two trainings ready at once, one CPU per node: one on each
    finally:
        ray.shutdown()
        cluster.shutdown()
