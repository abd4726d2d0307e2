"""ONNX Runtime as a choice, not a collision: the start-up check with faked installs, `kdbench env`, and the GPU extra
resolved by pip without installing it (marker `network`: it asks the package index, so the normal run leaves it out)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.core import ortbuild as ort
from kdbench.core.errors import KdbenchError

ROOT = Path(__file__).resolve().parents[2]


def fake(monkeypatch, distributions: dict[str, str], providers: list[str], owners: list[str] | None = None):
    """Installed builds (and which of them the import finds: all of them, as when they share one folder)."""
    monkeypatch.setattr(ort, "installed", lambda: dict(distributions))
    monkeypatch.setattr(ort, "owners", lambda: list(distributions if owners is None else owners))
    monkeypatch.setattr(ort, "providers", lambda: list(providers))


def test_exactly_one_build_with_the_provider_passes(monkeypatch):
    fake(monkeypatch, {"onnxruntime": "1.20.0"}, ["CPUExecutionProvider"])
    assert ort.check("cpu") == "CPUExecutionProvider"
    fake(monkeypatch, {"onnxruntime-gpu": "1.20.0"}, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ort.check("cuda") == "CUDAExecutionProvider" and ort.check("cpu") == "CPUExecutionProvider"


def test_both_builds_installed_is_refused_with_what_to_uninstall(monkeypatch):
    fake(monkeypatch, {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"}, ["CPUExecutionProvider"])
    with pytest.raises(KdbenchError) as err:
        ort.check("cpu")
    text = str(err.value)
    assert "2 ONNX Runtime builds are installed" in text
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu" in text


def test_a_build_in_its_own_folder_ahead_on_the_path_is_the_one_used(monkeypatch):
    """The device machine's case: the CPU build in site-packages, onnxruntime-gpu installed with --target into a
    folder ahead of it on the path - no file overwritten, and the import decides which one runs."""
    both = {"onnxruntime": "1.30.0", "onnxruntime-gpu": "1.31.1"}
    fake(monkeypatch, both, ["CUDAExecutionProvider", "CPUExecutionProvider"], owners=["onnxruntime-gpu"])
    assert ort.check("cuda") == "CUDAExecutionProvider"
    fake(monkeypatch, both, ["CPUExecutionProvider"], owners=["onnxruntime"])  # the CPU build first on the path
    with pytest.raises(KdbenchError, match="needs ONNX Runtime's CUDA build, but onnxruntime 1.30.0 is installed"):
        ort.check("cuda")


def test_the_build_that_imports_is_found_from_its_files():
    owners = ort.owners()
    assert len(owners) == 1 and owners[0] in ort.installed()  # the one build whose files Python imports


def test_cuda_with_the_cpu_build_says_what_to_install(monkeypatch):
    fake(monkeypatch, {"onnxruntime": "1.20.0"}, ["CPUExecutionProvider"])
    with pytest.raises(KdbenchError, match=r"needs ONNX Runtime's CUDA build.*pip install 'kdbench\[gpu\]'"):
        ort.check("cuda")
    fake(monkeypatch, {"onnxruntime-gpu": "1.20.0"}, ["CPUExecutionProvider"])  # the GPU build without its libraries
    with pytest.raises(KdbenchError, match="offers no CUDAExecutionProvider here"):
        ort.check("cuda")
    fake(monkeypatch, {}, [])
    with pytest.raises(KdbenchError, match=r"ONNX Runtime is not installed: pip install 'kdbench\[cpu\]'"):
        ort.check("cpu")


def test_the_check_runs_before_any_onnx_runtime_work(monkeypatch, tmp_path):
    """profile with the onnxruntime backend stops in one line, before building or timing anything."""
    fake(monkeypatch, {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"}, ["CPUExecutionProvider"])
    result = CliRunner().invoke(app, ["profile", "--quick", "--output", str(tmp_path / "p.json")])
    assert result.exit_code == 2 and "ONNX Runtime builds are installed" in result.output
    assert not (tmp_path / "p.json").exists()
    torch_only = CliRunner().invoke(
        app, ["profile", "--quick", "--backends", "torch", "--output", str(tmp_path / "t.json")]
    )
    assert torch_only.exit_code == 0, torch_only.output  # PyTorch alone does not need ONNX Runtime


def test_env_prints_what_a_bug_report_needs(monkeypatch):
    result = CliRunner().invoke(app, ["env", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert {"cpu_features", "torch_build", "onnxruntime", "gpu", "versions"} <= doc.keys()
    assert doc["onnxruntime"]["distributions"] and "CPUExecutionProvider" in doc["onnxruntime"]["providers"]
    fake(monkeypatch, {"onnxruntime": "1.20.0", "onnxruntime-gpu": "1.20.0"}, ["CPUExecutionProvider"])
    warned = CliRunner().invoke(app, ["env"])
    assert warned.exit_code == 0 and "warning: 2 ONNX Runtime builds are installed" in warned.stderr


def _resolve(extras: str, tmp_path) -> list[str]:
    """The distributions pip would install for kdbench[extras] into an empty environment (nothing is installed)."""
    report = tmp_path / f"{extras}.json"
    pin = tmp_path / "pin.txt"
    pin.write_text("torch==2.13.0\n")  # the local CPU wheel: the resolution of kdbench's own choices is what matters
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
    cmd += ["--report", str(report), "-c", str(pin), "-e", f"{ROOT}[{extras}]"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "PIP_NO_INPUT": "1"})
    assert done.returncode == 0, done.stderr[-2000:]  # asked for with -m network: an unreachable index fails it
    return sorted(i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"])


@pytest.mark.network
def test_the_gpu_extra_resolves_to_the_gpu_build_alone(tmp_path):
    """pip's own resolver, asked for kdbench[gpu] from scratch, must not bring the CPU build along (CI installs
    [cpu,dev] for real, which shows the other side)."""
    gpu = _resolve("gpu", tmp_path)
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu, gpu
