"""export and evaluate on tiny run folders built in code: pruned-head and narrow students, a broken ONNX file."""

import json
from dataclasses import replace

import pytest
from helpers import SHAPES, make_run
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core.errors import KdbenchError
from kdbench.deploy.evaluate import evaluate_run
from kdbench.deploy.export import ExportConfig, export_run, variant_path
from kdbench.results.run import Run

runner = CliRunner()


@pytest.mark.parametrize("kind", ["pruned", "narrow"])
def test_export_variants_pass_parity(kind, bert_teacher, glue_parquet, tmp_path):
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES[kind])
    report = export_run(ExportConfig(run, optimize="O2", quantize="int8", parity_samples=12), log=lambda *_: None)
    assert set(report) == {"fp32", "O2", "int8"}
    assert report["fp32"]["passed"] and report["fp32"]["argmax_agreement"] == 1.0
    assert report["fp32"]["max_abs_diff"] <= 1e-4 and report["O2"]["passed"]
    assert report["O2"]["argmax_agreement"] == 1.0 and report["O2"]["max_abs_diff"] <= 1e-4
    # int8: its own goal (95 % of the argmaxes), checked and met; its logits move, as quantised ones do
    assert report["int8"]["goal"] == {"agreement": 0.95, "max_abs_diff": None}
    assert report["int8"]["passed"] and report["int8"]["argmax_agreement"] >= 0.95
    assert 0 < report["int8"]["max_abs_diff"] < 1.0
    assert (run / "onnx" / "int8" / "model.onnx").is_file()
    assert json.loads((run / "onnx" / "parity.json").read_text())["int8"]["examples"] == 12


def test_evaluate_agrees_on_both_backends(bert_teacher, glue_parquet, tmp_path):
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES["pruned"])
    export_run(ExportConfig(run, quantize="int8", parity_samples=12), log=lambda *_: None)
    torch_doc = evaluate_run(run, "torch")
    ort_doc = evaluate_run(run, "onnxruntime")
    assert torch_doc["metrics"] == ort_doc["metrics"] and torch_doc["examples"]["validation"] == 12
    int8 = evaluate_run(run, "onnxruntime", "int8")
    assert int8["loss_vs_fp32"] == pytest.approx(ort_doc["score"] - int8["score"])
    assert (run / "eval" / "onnxruntime-int8.json").is_file()


def test_a_corrupt_onnx_file_and_a_failed_parity_are_refused(bert_teacher, glue_parquet, tmp_path):
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES["narrow"])
    export_run(ExportConfig(run, parity_samples=12), log=lambda *_: None)
    (run / "onnx" / "fp32" / "model.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(KdbenchError, match="not the file its parity check measured"):
        evaluate_run(run, "onnxruntime")
    report = json.loads((run / "onnx" / "parity.json").read_text())
    report["fp32"]["passed"] = False
    (run / "onnx" / "parity.json").write_text(json.dumps(report))
    with pytest.raises(KdbenchError, match="failed its parity check"):
        variant_path(run, "fp32")
    with pytest.raises(KdbenchError, match="no exported 'int8' variant"):
        variant_path(run, "int8")


def test_cli_bad_inputs(tmp_path, bert_teacher, glue_parquet):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["export", empty], ["evaluate", empty], ["export", empty, "--optimize", "O4"]):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 2 and "Traceback" not in result.output
    assert "does not exist or is empty" in runner.invoke(app, ["export", str(empty)]).output
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES["narrow"])
    result = runner.invoke(app, ["evaluate", str(run), "--backend", "torch", "--variant", "int8"])
    assert result.exit_code == 2 and "--variant is 'int8'; allowed: fp32, bf16, fp16" in result.output
    ok = runner.invoke(app, ["export", str(run), "--parity-samples", "8"])
    assert ok.exit_code == 0 and "parity passed" in ok.output


def profilable_run(tmp_path, bert_teacher, glue_parquet, shape: str):
    """A run folder whose config names its student, teacher and shape, as `kdbench distill` writes it."""
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES[shape])
    config = Run(run).config()
    config.update(student="p", teacher_dir=str(bert_teacher), student_shape=SHAPES[shape].to_dict())
    Run(run).write_config(config)
    return run


def test_profile_runs_times_the_trained_student_its_teacher_and_variants(bert_teacher, glue_parquet, tmp_path):
    from kdbench.measure.profile import ProfileConfig, run_profile

    run = profilable_run(tmp_path, bert_teacher, glue_parquet, "pruned")
    export_run(ExportConfig(run, quantize="int8", parity_samples=8), log=lambda *_: None)
    cfg = ProfileConfig(
        teacher=str(bert_teacher),
        students="",
        runs=(run,),
        batch_sizes=(1,),
        seq_lens=(16,),
        warmup_runs=1,
        warmup_time_s=0,
        min_runs=3,
        min_time_s=0,
    )
    result = run_profile(cfg)
    cells = {(c.student, c.backend) for c in result.cells}
    assert {
        ("rte/p", "torch"),
        ("rte/teacher", "torch"),
        ("rte/p", "onnxruntime"),
        ("rte/p", "onnxruntime:int8"),
    } <= cells
    int8 = next(c for c in result.cells if c.backend == "onnxruntime:int8")
    assert result.reference(int8).student == "rte/teacher" and result.reference(int8).backend == "onnxruntime"
    assert result.students["rte/p"]["task"] == "rte"


def test_profile_runs_leaves_out_a_failed_variant_unless_forced(bert_teacher, glue_parquet, tmp_path):
    from kdbench.measure.profile import ProfileConfig, plan

    run = profilable_run(tmp_path, bert_teacher, glue_parquet, "narrow")
    export_run(ExportConfig(run, quantize="int8", parity_samples=8), log=lambda *_: None)
    report = json.loads((run / "onnx" / "parity.json").read_text())
    report["int8"]["passed"] = False
    (run / "onnx" / "parity.json").write_text(json.dumps(report))
    cfg = ProfileConfig(teacher=str(bert_teacher), students="", runs=(run,), seq_lens=(16,))
    (student,) = [m for m in plan(cfg).runs if not m.name.endswith("/teacher")]
    assert set(student.variants) == {"fp32"}
    (student,) = [m for m in plan(replace(cfg, force=True)).runs if not m.name.endswith("/teacher")]
    assert set(student.variants) == {"fp32", "int8"}


def test_evaluate_at_the_deployed_precision_beside_fp32(bert_teacher, glue_parquet, tmp_path):
    run = make_run(tmp_path / "run", bert_teacher, glue_parquet, SHAPES["narrow"])
    bf16 = evaluate_run(run, "torch", "bf16")
    fp32 = evaluate_run(run, "torch", "fp32")
    assert bf16["variant"] == "bf16" and bf16["fp32_score"] == pytest.approx(fp32["score"])
    assert bf16["loss_vs_fp32"] == pytest.approx(fp32["score"] - bf16["score"])
    assert (run / "eval" / "torch-bf16.json").is_file()
