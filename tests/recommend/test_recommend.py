"""`kdbench recommend` on tiny models built in code: the shortlisting rule, "nothing fits", a whole recommendation,
and a killed one that continues (its timings and trainings kept, nothing trained twice)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import invoke

from kdbench.core.errors import KdbenchError
from kdbench.recommend import search
from kdbench.recommend.search import RecommendConfig, parse_latency, recommend
from kdbench.recommend.space import RULE, Candidate, candidates, generated_name, shortlist, write_space
from kdbench.zoo.students import StudentShape
from kdbench.zoo.teacher import TeacherShape

TEACHER = TeacherShape("t", "bert", layers=4, heads=4, hidden=32, ffn=64)


def cand(name: str, layers: int, hidden: int, zoo: bool = False) -> Candidate:
    shape = StudentShape(name, "", "paper", layers, hidden // 8, 8, hidden, 4 * hidden)
    return Candidate(name, shape, zoo, flops=layers * hidden * hidden)


def test_the_shortlist_follows_its_rule():
    pool = {
        c.name: c
        for c in (
            cand("zoo-small", 1, 16, zoo=True),
            cand("zoo-big", 2, 32, zoo=True),  # fits, more FLOPs than zoo-small: the zoo's pick
            cand("L1-D32", 1, 32),  # shallow-wide (the teacher's width)
            cand("L3-D32", 3, 32),  # wider than anything that fits: left out below
            cand("L4-D8", 4, 8),  # deep-narrow (the teacher's depth)
            cand("L2-D16", 2, 16),  # frontier
            cand("L1-D8", 1, 8),
        )
    }
    fits = {"zoo-small": 1.0, "zoo-big": 3.0, "L1-D32": 2.0, "L4-D8": 2.5, "L2-D16": 1.5, "L1-D8": 0.5}
    picked = shortlist(fits, pool, TEACHER, 4)
    assert [n for n, _ in picked] == ["zoo-big", "L1-D32", "L4-D8", "L2-D16"]
    assert [why for _, why in picked][:3] == [
        "the zoo student with the most FLOPs that fits",
        "shallow-wide: the teacher's width, fewer layers",
        "deep-narrow: the teacher's depth, narrower",
    ]
    assert [n for n, _ in shortlist(fits, pool, TEACHER, 2)] == ["zoo-big", "L1-D32"]
    assert "latency frontier" in RULE


def test_the_space_is_the_zoo_and_every_depth_and_width_once(tmp_path, tiny_zoo):
    write_space(tmp_path / "space", tiny_zoo, TEACHER)
    pool = candidates(tmp_path / "space", TEACHER, 16)
    generated = {n for n, c in pool.items() if not c.zoo}
    # 4 depths x 4 widths (FFN 4x: none is the teacher's own shape, whose FFN is 2x), beside the 4 zoo students
    assert len(generated) == 16 and generated_name(2, 32) in generated and len(pool) == 20
    assert all(c.shape.ffn == 4 * c.shape.hidden for c in pool.values() if not c.zoo)
    teacher_like = TeacherShape("t", "bert", layers=4, heads=4, hidden=32, ffn=128)
    write_space(tmp_path / "again", tiny_zoo, teacher_like)
    assert generated_name(4, 32) not in candidates(tmp_path / "again", teacher_like, 16)  # the teacher is no candidate


def test_latency_budgets_parse_with_units():
    assert parse_latency("--latency-budget", "15ms") == pytest.approx(0.015)
    assert parse_latency("--latency-budget", "800us") == pytest.approx(0.0008)
    assert parse_latency("--latency-budget", "0.02s") == pytest.approx(0.02)
    assert parse_latency("--latency-budget", "12") == pytest.approx(0.012)  # a bare number is milliseconds
    with pytest.raises(KdbenchError, match="expected a duration such as 15ms"):
        parse_latency("--latency-budget", "soon")


FAST_TIMING = dict(warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_blocks=3, min_time_s=0.0, max_time_s=2.0)
TRAIN = {"epochs": 1, "batch_size": 8, "max_seq_len": 16, "learning_rate": 1e-3}


def config(tmp_path, teacher, data, zoo, budget_s: float, **extra) -> RecommendConfig:
    return RecommendConfig(
        task="rte",
        latency_budget_s=budget_s,
        teacher=str(teacher),
        engines=("torch", "onnxruntime:int8"),
        candidates=2,
        output_dir=tmp_path / "rec",
        students_dir=zoo,
        data_dir=data,
        train=TRAIN,
        seed=7,
        **extra,
    )


@pytest.fixture
def quick_timing(monkeypatch):
    monkeypatch.setattr(search, "TIMING", FAST_TIMING)


def test_nothing_fits_is_one_line_before_any_training(tmp_path, bert_teacher, glue_parquet, tiny_zoo, quick_timing):
    cfg = config(tmp_path, bert_teacher, glue_parquet, tiny_zoo, 1e-7)
    with pytest.raises(KdbenchError, match=r"nothing fits a p50 budget of 0.0001 ms .* the fastest of \d+ candidates"):
        recommend(cfg)
    assert not (tmp_path / "rec" / "runs").exists() and not (tmp_path / "rec" / "study.yaml").exists()


def test_a_recommendation_end_to_end_and_a_killed_one_continues(
    tmp_path, bert_teacher, glue_parquet, tiny_zoo, quick_timing, monkeypatch
):
    from kdbench.study import runner

    cfg = config(tmp_path, bert_teacher, glue_parquet, tiny_zoo, 1.0)  # a second: every candidate fits
    real_run_study = runner.run_study

    def killed_after_the_first_cell(study, **kwargs):
        real_run_study(study, only=f"finetune/{study.tasks[0]}")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_study", killed_after_the_first_cell)
    with pytest.raises(KeyboardInterrupt):
        recommend(cfg)
    monkeypatch.setattr(runner, "run_study", real_run_study)
    timed = sorted((tmp_path / "rec" / "timing").glob("chunk-*.json"))
    assert len(timed) == 2  # 20 candidates, 16 a chunk
    stamps = [p.stat().st_mtime_ns for p in timed]
    doc = recommend(cfg)
    assert [p.stat().st_mtime_ns for p in timed] == stamps  # the kept timings were reused, not redone
    best, shortlisted = doc["recommendation"], doc["shortlist"]
    assert doc["timed"] == 20 and doc["fitting"] >= 2 and doc["trained"] == 2 and len(shortlisted) == 2
    assert shortlisted[0]["why"] == "the zoo student with the most FLOPs that fits"
    assert best["name"] in {s["name"] for s in shortlisted} and best["engine"] in ("torch", "onnxruntime:int8")
    assert best["score"]["low"] <= best["score"]["value"] <= best["score"]["high"]
    assert best["latency_s"]["high"] <= 1.0 and doc["seq_len"]["auto"] and doc["seq_len"]["value"] > 0
    assert doc["runner_up"]["name"] != best["name"] and "shown" in doc["difference"]
    assert Path(doc["deploy"]["model"]).exists() and "--latency-budget 1000ms" in doc["command"]
    md = (tmp_path / "rec" / "RECOMMENDATION.md").read_text()
    assert f"Recommended: {best['name']} on {best['engine']}" in md and RULE in md
    assert (tmp_path / "rec" / "recommendation.png").is_file()
    assert json.loads((tmp_path / "rec" / "recommendation.json").read_text())["schema"] == "kdbench.recommendation"
    # the same command again: nothing is timed or trained anew, and the answer is the same
    monkeypatch.setattr("kdbench.measure.profile.run_profile", lambda *a, **k: pytest.fail("timed again"))
    ran = []
    monkeypatch.setattr(runner, "run_study", lambda study, **kw: ran.append(real_run_study(study, **kw)))
    again = recommend(cfg)
    assert ran == [[]] and again["recommendation"] == best


def test_another_folder_is_never_written_into(tmp_path, bert_teacher, glue_parquet, tiny_zoo):
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "notes.txt").write_text("mine")
    with pytest.raises(KdbenchError, match="holds files kdbench recommend did not write"):
        recommend(config(tmp_path, bert_teacher, glue_parquet, tiny_zoo, 1.0))
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == ["notes.txt"]


def test_the_command_line_checks_its_options(tmp_path):
    result = invoke("recommend", "--task", "rte", "--latency-budget", "fast", "-o", tmp_path / "r")
    assert result.exit_code == 2 and "--latency-budget is 'fast'" in result.output
    result = invoke("recommend", "--task", "rte", "--latency-budget", "5ms", "--stat", "p99", "-o", tmp_path / "r")
    assert result.exit_code == 2 and "--stat is 'p99'" in result.output
    result = invoke(
        "recommend", "--task", "rte", "--latency-budget", "5ms", "--engines", "tensorrt", "-o", tmp_path / "r"
    )
    assert result.exit_code == 2 and "unknown backend 'tensorrt'" in result.output
    assert not (tmp_path / "r").exists()
