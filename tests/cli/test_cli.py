"""The command line end to end: output, exit status 2 with one line for every bad input, no partial files."""

import json

import pytest
import torch
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core.errors import KdbenchError

runner = CliRunner()
FAST = [
    "--batch-sizes",
    "1",
    "--seq-lens",
    "16",
    "--warmup",
    "1",
    "--warmup-time",
    "0",
    "--min-runs",
    "3",
    "--min-time",
    "0",
    "--budget",
    "3s",  # tiny models' comparisons may stay undecided: the deciding phase would take the default 5 minutes
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    assert result.exit_code == 2, result.output
    text = result.output
    assert "Traceback" not in text
    for fragment in fragments:
        assert fragment in " ".join(text.split()), text


def test_help_explains_every_command():
    """`kdbench --help` lists every command with its summary; each command's --help shows its whole description and
    every one of its options with a help text."""
    import typer.main

    group = typer.main.get_command(app)
    listing = " ".join(invoke("--help").output.split())
    assert len(group.commands) >= 10
    for name, command in group.commands.items():
        summary = " ".join(command.help.split("\n\n")[0].split())
        assert f"{name} " in listing and summary[:40] in listing, name
        result = invoke(name, "--help")
        text = " ".join(result.output.split())
        assert result.exit_code == 0 and summary[:60] in text, name
        for param in command.params:
            if param.param_type_name == "option" and param.name != "help":
                assert param.help, f"{name} {param.opts[0]} has no help text"
                assert param.opts[0] in text, f"{name} --help does not show {param.opts[0]}"
    profile_help = " ".join(invoke("profile", "--help").output.split())
    assert "--budget" in profile_help and "[default: 5m]" in profile_help  # the default profile decides in 5 minutes


def test_students_table_for_the_embedded_teacher():
    result = invoke("students", "--students", "paper")
    assert result.exit_code == 0, result.output
    assert "124.6" in result.output and "516D" in result.output and "6L_384D" in result.output


def test_profile_end_to_end_writes_a_result_and_prints_the_verdict(tiny_teacher, tiny_zoo, tmp_path):
    out = tmp_path / "deep" / "profile.json"
    result = invoke(
        "profile", "--teacher", tiny_teacher, "--students-dir", tiny_zoo, "--students", "all", *FAST, "-o", out
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["schema"] == "kdbench.profile" and len(data["cells"]) == 5 * 2
    assert "Attention-head verdict" in result.output and "Head claim" in result.output
    assert "two_heads (torch, cpu, batch 1)" in " ".join(result.output.split())
    assert data["settings"]["budget_s"] == 3
    again = invoke(
        "profile", "--teacher", tiny_teacher, "--students-dir", tiny_zoo, "--students", "two_heads", "--backends",
        "torch", *FAST, "--budget", "0", "-o", out,
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    data = json.loads(out.read_text())
    assert data["settings"]["budget_s"] is None and all(c["looks"] == 0 for c in data["cells"])  # the minimum only


@pytest.mark.parametrize(
    "args,fragments",
    [
        (["--students", "4Ah"], ["unknown student '4Ah' (did you mean '4AH'?)"]),
        (["--backends", "onnx"], ["--backends is 'onnx'", "did you mean 'onnxruntime'"]),
        (["--batch-sizes", "1,x"], ["--batch-sizes takes comma-separated integers"]),
        (["--batch-sizes", "0"], ["--batch-sizes must be positive"]),
        (["--dtypes", "fp32,fp8"], ["--dtypes is 'fp8'"]),
        (["--teacher", "/nonexistent/teacher-folder"], ["teacher folder /nonexistent/teacher-folder does not exist"]),
        (["--seq-lens", "600"], ["--seq-lens 600 is longer than teacher 'roberta-base' allows (512 positions)"]),
    ],
)
def test_bad_profile_options(args, fragments, tmp_path):
    out = tmp_path / "p.json"
    assert_user_error(invoke("profile", *args, "-o", out), *fragments)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the answer on a machine without CUDA")
def test_cuda_without_cuda(tmp_path):
    out = tmp_path / "p.json"
    assert_user_error(invoke("profile", "--device", "cuda", "--students", "3L", "-o", out), "no CUDA device")
    assert not out.exists()


def test_unwritable_output_fails_before_measuring(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_user_error(invoke("profile", "-o", blocker / "p.json"), "is not a folder")
    assert_user_error(invoke("profile", "-o", tmp_path), "it is a folder")


@pytest.mark.parametrize(
    "body,fragments",
    [
        ("layers = [1\n", ["bad.toml: not valid TOML"]),
        ("heads = 5\n", ["5 heads do not divide hidden size 32"]),
        ("layers = 9\n", ["more than the teacher's 4"]),
        ("hidden = 0\n", ["'hidden' is 0; sizes must be positive"]),
        ("hidden = -8\n", ["'hidden' is -8; sizes must be positive"]),
        ("layrs = 2\n", ["unknown field 'layrs' (did you mean 'layers'?)"]),
    ],
)
def test_bad_student_files(body, fragments, tiny_teacher, tiny_zoo, tmp_path):
    (tiny_zoo / "bad.toml").write_text(body)
    out = tmp_path / "p.json"
    result = invoke(
        "profile", "--teacher", tiny_teacher, "--students-dir", tiny_zoo, "--students", "all", *FAST, "-o", out
    )
    assert_user_error(result, *fragments)
    assert not out.exists()
    assert_user_error(invoke("students", "--teacher", tiny_teacher, "--students-dir", tiny_zoo), *fragments)


def test_missing_students_dir(tmp_path):
    assert_user_error(invoke("students", "--students-dir", tmp_path / "nope"), "does not exist")


def test_error_text_with_brackets_is_printed_verbatim(tmp_path):
    result = invoke("profile", "--batch-sizes", "[1]", "-o", tmp_path / "p.json")
    assert_user_error(result, "--batch-sizes takes comma-separated integers, e.g. 1,8; got '[1]'")


@pytest.mark.parametrize("text", ["0", "0s", "0m", "0h", "0.0", "0S"])
def test_every_spelling_of_a_zero_budget_means_the_minimum_only(text):
    from kdbench.cli.options import parse_duration

    assert parse_duration("--budget", text, zero=True) == 0.0
    with pytest.raises(KdbenchError, match="--time-limit must be positive"):
        parse_duration("--time-limit", text)
