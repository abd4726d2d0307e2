"""`kdbench finetune` and `kdbench distill` at the command line: every bad input is one line and exit status 2."""

import json

import pytest
import torch
from helpers import FAST_ARGS as FAST
from helpers import assert_user_error, base, invoke


def test_distill_end_to_end_prints_student_beside_teacher(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    result = invoke(*base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "run"))
    assert result.exit_code == 0, result.output
    assert "of the teacher" in result.output and "layer map [0, 3]" in result.output
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["schema"] == "kdbench.distill"


def test_a_finished_run_is_never_overwritten(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"schema": "kdbench.run", "task": "rte", "student": "half_layers", "train": {}}')
    (out / "metrics.json").write_text('{"finished": true}')
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, out)), "already holds a finished run")
    assert (out / "metrics.json").read_text() == '{"finished": true}'


def test_overwrite_never_replaces_a_folder_kdbench_did_not_write(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    result = invoke(*base(bert_teacher, glue_parquet, tiny_zoo, out), "--overwrite")
    assert_user_error(result, "kdbench did not write", "never replaces it")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_corrupt_and_missing_teacher_weights(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    (bert_teacher / "model.safetensors").write_bytes(b"\x00garbage")
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "r")), "cannot load teacher")
    (bert_teacher / "model.safetensors").unlink()
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "r")), "has no weights")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "extra,fragments",
    [
        (["--student", "6l"], ["unknown student '6l'"]),
        (["--task", "rtee"], ["unknown task 'rtee' (did you mean 'rte'?)"]),
        (["--resume"], ["--resume:", "nothing to continue"]),
        (["--init", "copy"], ["--init is 'copy'"]),
        (["--epochs", "0"], ["--epochs must be positive"]),
    ],
)
def test_bad_distill_options(extra, fragments, bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "r"), *extra), *fragments)


def test_student_the_teacher_cannot_host(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    (tiny_zoo / "deep.toml").write_text("layers = 9\n")
    result = invoke(
        *base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "r"),
        "--student",
        "deep",
        "--teacher-checkpoint",
        bert_teacher,
    )
    assert_user_error(result, "more than the teacher's 4")


def test_missing_split_and_bad_labels(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    import pandas as pd

    train = glue_parquet / "rte" / "train.parquet"
    good = pd.read_parquet(train)
    bad = good.copy()
    bad.loc[[2, 5], "label"] = 7  # rows 3 and 6 of the file: RTE has labels 0 and 1
    bad.to_parquet(train)
    out = tmp_path / "r"
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, out)), "bad label 7 in row(s) 3, 6")
    good.to_parquet(train)
    (glue_parquet / "rte" / "validation.parquet").unlink()
    assert_user_error(invoke(*base(bert_teacher, glue_parquet, tiny_zoo, out)), "has no validation split")
    assert not out.exists()  # nothing written for either


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_cuda_without_cuda(bert_teacher, glue_parquet, tiny_zoo, tmp_path):
    assert_user_error(
        invoke(*base(bert_teacher, glue_parquet, tiny_zoo, tmp_path / "r"), "--device", "cuda"), "no CUDA device"
    )
    assert_user_error(
        invoke("finetune", "--task", "rte", "--teacher", bert_teacher, "--data-dir", glue_parquet, "--device", "cuda"),
        "no CUDA device",
    )


def test_finetune_command_caches(bert_teacher, glue_parquet):
    args = ["finetune", "--task", "cola", "--teacher", bert_teacher, "--data-dir", glue_parquet, *FAST]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 0 and "found in cache" in again.output
