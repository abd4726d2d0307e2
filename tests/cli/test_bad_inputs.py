"""The hostile new user (issue 11): every command given bad input answers the same way.

For each case of the table below this suite guarantees what the README promises - "Errors in what you ask for print
one line and exit with status 2" - and that nothing is written, moved or deleted on the way:

  * the exit status is 2,
  * stderr holds exactly one line, and no "Traceback" appears on stdout or stderr,
  * the command ended through SystemExit (no other exception escaped it),
  * the file tree is byte-identical before and after: every file and folder (with its mode) under the case's own
    folder (which holds its output folders, run folders, data, student files and study files, and is the working
    directory, so default output paths are covered too), under the shared ONNX/teacher cache ($KDBENCH_CACHE) and
    under the module's shared inputs.

The expensive inputs (a tiny pretrained-style teacher, tiny GLUE parquet files, a tiny student zoo, a fine-tuned
teacher in the cache, a finished distillation run with fp32 and int8 ONNX exports, a profile result and a
pytest-benchmark file) are built once per module with the library API; each case copies what it needs into its own
folder, so no case can damage another's inputs. Only cases whose right answer is exit status 2 belong here (a real
regression found by `compare` exits 1 and is tested elsewhere).

Run it with:

    python3 -m pytest -q -p no:cacheprovider tests/test_bad_inputs.py
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app

FAST = ["--epochs", "1", "--batch-size", "8", "--max-seq-len", "16", "--learning-rate", "1e-3"]
TRAIN = {"learning_rate": 1e-3, "epochs": 1.0, "batch_size": 8, "max_seq_len": 16}
PROFILE_FAST = [
    "--backends",
    "torch",
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
]
NOT_UTF8 = b'name = "x"\n\xff\xfe\x80 not utf-8\n'


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# ------------------------------------------------------------------------------------------- shared inputs (once)
@dataclass(frozen=True)
class Base:
    """The module's shared, read-only inputs (cases copy them before use)."""

    root: Path
    teacher: Path  # a tiny pretrained-style BERT teacher (weights, tokenizer, config; 72 positions)
    data: Path  # <data>/{rte,cola,stsb}/{train,validation}.parquet
    zoo: Path  # the tiny student zoo (half_layers, two_heads, two_heads_pruned, narrow)
    finetuned: Path  # the teacher fine-tuned on rte, in the cache
    run: Path  # a finished distillation run (half_layers on rte) with onnx/{fp32,int8} and parity.json
    profile: Path  # a kdbench profile result (teacher, 4AH, 4AH_pruned at one grid point)
    bench: Path  # a pytest-benchmark JSON file


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    from conftest import TINY_ZOO, write_parquet_glue, write_tiny_teacher
    from fixtures import make_result

    from kdbench.deploy.export import ExportConfig, export_run
    from kdbench.train.config import DistillConfig, TrainConfig
    from kdbench.train.distill import distill
    from kdbench.train.finetune import finetune

    root = tmp_path_factory.mktemp("hostile-base")
    with pytest.MonkeyPatch.context() as mp:
        # the autouse _isolated_cache fixture is function-scoped: set the same session cache here too
        mp.setenv("KDBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "kdbench-cache"))
        teacher = write_tiny_teacher(root / "teacher")
        data = write_parquet_glue(root / "glue")
        zoo = root / "students"
        zoo.mkdir()
        for name, body in TINY_ZOO.items():
            (zoo / f"{name}.toml").write_text(f'name = "{name}"\n{body}')
        train = TrainConfig(**TRAIN)
        quiet = lambda *_: None  # noqa: E731
        finetuned = finetune(str(teacher), "rte", train, data, log=quiet, progress=False)
        run = root / "run"
        distill(
            DistillConfig(
                task="rte",
                student="half_layers",
                teacher=str(teacher),
                teacher_checkpoint=str(finetuned),
                students_dir=zoo,
                data_dir=data,
                output_dir=run,
                train=train,
            ),
            log=quiet,
            progress=False,
        )
        export_run(ExportConfig(run, quantize="int8", parity_samples=8), log=quiet)
    profile = root / "profile.json"
    make_result({"teacher": 0.010, "4AH": 0.010, "4AH_pruned": 0.008}).save(profile)
    stats = {"min": 0.009, "median": 0.010, "mean": 0.010, "stddev": 0.0005, "rounds": 20}
    bench = root / "bench.json"
    bench.write_text(
        json.dumps(
            {
                "machine_info": {"node": "test"},
                "benchmarks": [
                    {"name": n, "group": "g", "extra_info": {"student": n}, "stats": stats} for n in ("teacher", "4AH")
                ],
            }
        )
    )
    for p in root.rglob("*"):  # nothing may write into the shared inputs; a case that does is caught by the snapshot
        if p.is_file():
            p.chmod(0o444)
    return Base(root, teacher, data, zoo, Path(finetuned), run, profile, bench)


# ---------------------------------------------------------------------------------------------- a case's context
class Ctx:
    """What a case's argv builder gets: its own folder (also the working directory) and lazily made copies."""

    def __init__(self, tmp: Path, base: Base):
        self.tmp = tmp
        self.base = base
        self.ft = base.finetuned  # used read-only; the cache is part of the snapshot
        self.out = tmp / "out"  # an output path that does not exist yet
        self.immutable: list[Path] = []  # folders made immutable (chattr +i): made mutable again after the case

    def _copy(self, src: Path, name: str) -> Path:
        dest = self.tmp / name
        if src.is_dir():
            shutil.copytree(src, dest)
        else:
            shutil.copyfile(src, dest)
        for p in [dest, *dest.rglob("*")]:  # copies are the user's own, writable files
            p.chmod(0o755 if p.is_dir() else 0o644)
        return dest

    @cached_property
    def teacher(self) -> Path:
        return self._copy(self.base.teacher, "teacher")

    @cached_property
    def data(self) -> Path:
        return self._copy(self.base.data, "glue")

    @cached_property
    def zoo(self) -> Path:
        return self._copy(self.base.zoo, "students")

    @cached_property
    def run(self) -> Path:
        """A finished run with fp32 and int8 exports (its config's data_dir is the shared data)."""
        return self._copy(self.base.run, "run")

    @cached_property
    def bare_run(self) -> Path:
        """A finished run before any export: no onnx/ folder, so an export that leaves one behind is caught."""
        dest = self._copy(self.base.run, "bare-run")
        shutil.rmtree(dest / "onnx")
        return dest

    @cached_property
    def profile(self) -> Path:
        return self._copy(self.base.profile, "profile.json")

    @cached_property
    def profile2(self) -> Path:
        return self._copy(self.base.profile, "profile-current.json")

    @cached_property
    def bench(self) -> Path:
        return self._copy(self.base.bench, "bench.json")

    def file(self, name: str, content: bytes | str) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        return path

    def folder(self, name: str, *files: tuple[str, str]) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        for fname, text in files:
            (path / fname).write_text(text)
        return path

    def json_edit(self, path: Path, edit) -> Path:
        """Rewrite a JSON file after `edit` changed its document in place (its return value is ignored)."""
        doc = json.loads(path.read_text())
        edit(doc)
        path.write_text(json.dumps(doc))
        return path

    def json_set(self, path: Path, doc) -> Path:
        """Replace a JSON file's document."""
        path.write_text(json.dumps(doc))
        return path

    def read_only(self, name: str) -> Path:
        """A folder this process cannot write into: read-only permissions, or for root (which ignores them, and CI
        runs as root) the immutable flag, which root cannot write past either."""
        path = self.folder(name)
        if os.geteuid() != 0:
            path.chmod(0o555)
            return path
        import subprocess

        if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
            pytest.skip("root ignores permissions and this filesystem has no immutable flag (chattr +i)")
        self.immutable.append(path)
        return path

    # -- builders shared by many cases
    def zoo_with(self, body: bytes | str, name: str = "bad.toml") -> Path:
        zoo = self.zoo
        if isinstance(body, bytes):
            (zoo / name).write_bytes(body)
        else:
            (zoo / name).write_text(body)
        return zoo

    def glue_with(self, task: str, split: str, **columns) -> Path:
        """The data copy with one split of `task` rewritten: columns given replace the originals. Written with
        pyarrow directly: pandas would store a NaN label as a missing one (null), which is another bad input."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.data / task / f"{split}.parquet"
        table = pq.read_table(path)
        for k, v in columns.items():
            table = table.set_column(table.column_names.index(k), k, pa.array(v, from_pandas=False))
        pq.write_table(table, path)
        return self.data

    def glue_without(self, task: str, split: str, column: str) -> Path:
        import pandas as pd

        path = self.data / task / f"{split}.parquet"
        pd.read_parquet(path).drop(columns=[column]).to_parquet(path)
        return self.data

    def glue_rows(self, task: str, split: str, n: int) -> Path:
        import pandas as pd

        path = self.data / task / f"{split}.parquet"
        pd.read_parquet(path).head(n).to_parquet(path)
        return self.data

    def first_label(self, task: str, split: str, first) -> Path:
        """`task`'s split with its first label replaced by `first` (the column becomes float where needed)."""
        import pyarrow.parquet as pq

        labels = pq.read_table(self.data / task / f"{split}.parquet").column("label").to_pylist()
        if isinstance(first, float):
            labels = [float(x) for x in labels]
        return self.glue_with(task, split, label=[first, *labels[1:]])

    def rte_labels(self, split: str, first) -> Path:
        return self.first_label("rte", split, first)

    def stsb_labels(self, first: float) -> Path:
        return self.first_label("stsb", "train", first)

    def interrupted(self, name: str = "interrupted") -> Path:
        """An interrupted run of the same recipe as the finished one: its config.json (paths pointed at this case's
        copies) and a checkpoint folder a Trainer could resume from. Nothing may load the checkpoint before the
        recipe check."""
        run = self.tmp / name
        (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
        cfg = json.loads((self.base.run / "config.json").read_text())
        cfg.update(
            teacher=str(self.teacher),
            teacher_checkpoint=str(self.ft),
            students_dir=str(self.zoo),
            data_dir=str(self.data),
            output_dir=str(run),
        )
        (run / "config.json").write_text(json.dumps(cfg, indent=2))
        (run / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
        return run

    def task_file(self, body: str | None = None, train: dict | None = None, **fields) -> Path:
        """A task folder in the case folder: tasks/x.toml (a single-text CSV task, `fields` replacing its TOML
        fields, or `body` whole) beside train.csv and dev.csv (`train`: columns replacing the training file's)."""
        import pandas as pd

        folder = self.tmp / "tasks"
        folder.mkdir(exist_ok=True)
        rows = {"review": ["good film", "bad film", "fine"], "sentiment": ["pos", "neg", "pos"]}
        pd.DataFrame({**rows, **(train or {})}).to_csv(folder / "train.csv", index=False)
        pd.DataFrame(rows).to_csv(folder / "dev.csv", index=False)
        toml = {
            "text": '"review"',
            "label": '"sentiment"',
            "labels": '["neg", "pos"]',
            "metrics": '["accuracy"]',
            **fields,
        }
        text = (
            body
            or "".join(f"{k} = {v}\n" for k, v in toml.items())
            + '[data]\ntrain = "train.csv"\nvalidation = "dev.csv"\n'
        )
        (folder / "x.toml").write_text(text)
        return folder / "x.toml"

    def study(self, overrides: dict | None = None, drop: tuple[str, ...] = (), raw: bytes | None = None) -> Path:
        """study.yaml in the case folder (output_dir: out, next to it); `overrides` replace top-level fields."""
        import yaml

        path = self.tmp / "study.yaml"
        if raw is not None:
            path.write_bytes(raw)
            return path
        doc = {
            "name": "hostile",
            "teacher": str(self.teacher),
            "data_dir": str(self.data),
            "students_dir": str(self.zoo),
            "tasks": ["rte"],
            "students": ["half_layers"],
            "seeds": [7],
            "train": dict(TRAIN),
            "profile": {
                "backends": ["torch"],
                "batch_sizes": [1],
                "seq_lens": [16],
                "warmup_runs": 1,
                "warmup_time_s": 0,
                "min_runs": 3,
                "min_time_s": 0,
            },
            "output_dir": "out",
        }
        doc.update(overrides or {})
        for k in drop:
            doc.pop(k, None)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path


def distill_args(c: Ctx, *extra, out: Path | None = None) -> list:
    """A distillation that would succeed in seconds (fine-tuned teacher given), then `extra` (later options win)."""
    return [
        "distill",
        "--task",
        "rte",
        "--student",
        "half_layers",
        "--teacher",
        c.teacher,
        "--teacher-checkpoint",
        c.ft,
        "--students-dir",
        c.zoo,
        "--data-dir",
        c.data,
        "--output-dir",
        out or c.out,
        *FAST,
        *extra,
    ]


def finetune_args(c: Ctx, *extra, task: str | Path = "rte") -> list:
    return ["finetune", "--task", task, "--teacher", c.teacher, "--data-dir", c.data, *FAST, *extra]


def profile_args(c: Ctx, *extra) -> list:
    return ["profile", *PROFILE_FAST, "-o", c.out / "profile.json", *extra]


def tiny_profile_args(c: Ctx, *extra) -> list:
    return profile_args(c, "--teacher", c.teacher, "--students-dir", c.zoo, "--students", "all", *extra)


def case(builder, id: str, fragment: str, marks=()):
    """A bad input: how to build its argv, its id, and the fragment its one error line must contain."""
    return pytest.param(builder, fragment, id=id, marks=marks)


NO_CUDA = pytest.mark.skipif(_cuda(), reason="checks the answer on a machine without CUDA")

# ---------------------------------------------------------------------------------------------------- the table
# Each entry: a builder (Ctx) -> argv (it may prepare files first; the snapshot is taken after it returns), its id,
# and the fragment its one error line must contain: an unrelated error, however well formed, fails the case.
CASES = [
    # ------------------------------------------------------------------------------------------ kdbench students
    case(lambda c: ["students", "--students", "4Ah"], "students-typo", "unknown student '4Ah' (did you mean '4AH'?)"),
    case(lambda c: ["students", "--students-dir", c.tmp / "nope"], "students-dir-missing", "does not exist"),
    case(
        lambda c: ["students", "--students-dir", c.file("a-file.toml", "layers = 2\n")],
        "students-dir-is-a-file",
        "is a file; pass the folder that holds the .toml files",
    ),
    case(
        lambda c: ["students", "--students-dir", c.folder("empty")],
        "students-dir-empty",
        "holds no *.toml student files",
    ),
    case(lambda c: ["students", "--seq-len", "0"], "students-seq-len-zero", "--seq-len must be positive, got 0"),
    case(
        lambda c: ["students", "--teacher", c.folder("no-config", ("x.txt", "x"))],
        "students-teacher-no-config",
        "has no config.json; pass a Hugging Face model folder or hub id",
    ),
    case(
        lambda c: ["students", "--teacher", c.folder("bad-config", ("config.json", "{not json"))],
        "students-teacher-config-not-json",
        "is not a valid JSON file",
    ),
    case(
        lambda c: ["students", "--teacher", c.folder("empty-config", ("config.json", ""))],
        "students-teacher-config-empty-file",
        "is not a valid JSON file",
    ),
    case(
        lambda c: ["students", "--teacher", c.teacher, "--students-dir", c.zoo_with(NOT_UTF8)],
        "students-toml-not-utf8",
        "is not UTF-8 text",
    ),
    case(
        lambda c: ["students", "--teacher", c.teacher, "--students-dir", c.zoo_with("layrs = 2\n")],
        "students-toml-unknown-field",
        "unknown field 'layrs' (did you mean 'layers'?)",
    ),
    case(
        lambda c: ["students", "--teacher", c.teacher, "--students-dir", c.zoo_with("layers = -2\n")],
        "students-toml-negative-layers",
        "field 'layers' is -2; sizes must be positive",
    ),
    case(
        lambda c: ["students", "--teacher", c.teacher, "--students-dir", c.zoo_with("layers = 9\n")],
        "students-toml-deeper-than-teacher",
        "resolves to 9, more than the teacher's 4",
    ),
    case(
        lambda c: [
            "students",
            "--teacher",
            c.teacher,
            "--students-dir",
            (c.zoo / "dir.toml").mkdir() or c.zoo,
        ],
        "students-toml-is-a-folder",
        "is a folder, not a file",
    ),
    # ------------------------------------------------------------------------------------------- kdbench profile
    case(
        lambda c: profile_args(c, "--students", "4Ah"),
        "profile-student-typo",
        "unknown student '4Ah' (did you mean '4AH'?)",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--backends", "onnx"),
        "profile-backend-typo",
        "--backends is 'onnx' (did you mean 'onnxruntime'?)",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--device", "tpu"),
        "profile-device-unknown",
        "--device is 'tpu' (did you mean 'cpu'?); allowed: cpu, cuda",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--device", "cuda"),
        "profile-device-cuda-absent",
        "--device cuda: no CUDA device is visible to PyTorch here; use",
        marks=NO_CUDA,
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--dtype", "int4"),
        "profile-dtype-unknown",
        "allowed: fp32, fp16, bf16",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--dtypes", "fp32,int3"),
        "profile-dtype-unknown",
        "allowed: fp32, fp16, bf16",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--batch-sizes", "1,x"),
        "profile-batch-sizes-malformed",
        "--batch-sizes takes comma-separated integers, e.g. 1,8; got '1,x",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--batch-sizes", "0"),
        "profile-batch-sizes-zero",
        "--batch-sizes must be positive integers, got [0]",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--batch-sizes", "1,,2"),
        "profile-batch-sizes-empty-item",
        "--batch-sizes has an empty item in '1,,2'",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--backends", "torch,"),
        "profile-backends-empty-item",
        "--backends has an empty item in 'torch,'",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L,,4AH"),
        "profile-students-empty-item",
        "the student list '3L,,4AH' has an empty item",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--min-time", "5", "--max-time", "0.1"),
        "profile-max-time-below-min-time",
        "--max-time is 0.1 s, less than the --min-time of 5 s",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--budget", "-5m"),
        "profile-budget-negative",
        "--budget must be 0 or more, got '-5m'",
    ),
    case(
        lambda c: profile_args(c, "--quick", "--students", "3L", "--min-time", "10"),
        "profile-quick-min-time-over-its-cap",
        "--min-time is 10 s, longer than --quick's --max-time of 5 s; give --max-time too",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--budget", "inf"),
        "profile-budget-infinite",
        "--budget must be finite, got 'inf'",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--budget", "5 minutes"),
        "profile-budget-malformed",
        "--budget is '5 minutes'; expected a duration such as 90s, 45m or 2h",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--seq-lens", "600"),
        "profile-seq-lens-too-long",
        "--seq-lens 600 is longer than teacher 'roberta-base' allows (512",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--threads", "0"),
        "profile-threads-zero",
        "--threads must be at least 1, got 0",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--seed", "-1"),
        "profile-seed-negative",
        "--seed must be from 0 to 2**32 - 1, got -1",
    ),
    case(
        lambda c: profile_args(c, "--students", "3L", "--teacher", c.tmp / "nope"),
        "profile-teacher-missing",
        "does not exist",
    ),
    case(
        lambda c: ["profile", "--students", "3L", "-o", c.folder("a-folder")],
        "profile-output-is-a-folder",
        "it is a folder; pass --output with a file name",
    ),
    case(
        lambda c: ["profile", "--students", "3L", "-o", c.read_only("locked") / "p.json"],
        "profile-output-read-only",
        "is not writable",
    ),
    case(
        lambda c: profile_args(c, "--runs", c.folder("not-a-run")),
        "profile-runs-not-a-run",
        "does not exist or is empty",
    ),
    case(
        lambda c: profile_args(c, "--runs", c.run, "--seq-lens", "500"),
        "profile-runs-seq-len-over-teacher",
        "--seq-lens 500 is longer than the teacher of",
    ),
    case(
        lambda c: profile_args(c, "--runs", (c.run / "config.json").write_bytes(NOT_UTF8) and c.run),
        "profile-runs-config-not-utf8",
        "is not a kdbench run folder",
    ),
    case(
        lambda c: profile_args(c, "--runs", (c.run / "config.json").write_text('{"task": "rte"}') and c.run),
        "profile-runs-config-wrong-schema",
        "is not a kdbench run folder",
    ),
    case(lambda c: profile_args(c, "--batch-size", "1"), "profile-option-typo", "No such option: --batch-size"),
    # ------------------------------------------------------------------------------------------ kdbench finetune
    case(
        lambda c: finetune_args(c, "--task", "rtee"), "finetune-task-typo", "unknown task 'rtee' (did you mean 'rte'?)"
    ),
    case(
        lambda c: finetune_args(c, "--teacher", c.folder("no-config", ("x.txt", "x"))),
        "finetune-teacher-no-config",
        "has no config.json; pass a Hugging Face model folder or hub id",
    ),
    case(
        lambda c: finetune_args(
            c, "--teacher", (c.teacher / "model.safetensors").write_bytes(b"\x00garbage") and c.teacher
        ),
        "finetune-teacher-corrupt-weights",
        "Error while deserializing header: header too large",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.tmp / "no-such-glue"),
        "finetune-data-dir-missing",
        "has no train split for rte: looked for",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.file("glue.parquet", "x")),
        "finetune-data-dir-is-a-file",
        "has no train split for rte: looked for",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.folder("empty-glue")),
        "finetune-data-dir-empty",
        "has no train split for rte: looked for",
    ),
    case(
        lambda c: finetune_args(
            c, "--data-dir", (c.data / "rte" / "train.parquet").write_bytes(b"PAR1junk") and c.data
        ),
        "finetune-parquet-corrupt",
        "not a readable parquet file (ArrowInvalid",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.glue_without("rte", "train", "label")),
        "finetune-label-column-missing",
        "missing column(s) label (columns present: sentence1, sentence2, idx)",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.glue_rows("rte", "train", 0)),
        "finetune-train-split-empty",
        "the split is empty",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.stsb_labels(float("nan")), task="stsb"),
        "finetune-stsb-nan-label",
        "bad label nan in row(s) 1; stsb labels are finite numbers",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.stsb_labels(float("inf")), task="stsb"),
        "finetune-stsb-inf-label",
        "bad label inf in row(s) 1; stsb labels are finite numbers",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.stsb_labels(None), task="stsb"),
        "finetune-stsb-missing-label",
        "bad label None in row(s) 1; stsb labels are finite numbers",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.rte_labels("train", 2)),
        "finetune-rte-label-2",
        "bad label 2 in row(s) 1; rte labels are 0..1",
    ),
    case(
        lambda c: finetune_args(c, "--data-dir", c.rte_labels("validation", 0.5)),
        "finetune-rte-label-0.5",
        "bad label 0.5 in row(s) 1; rte labels are 0..1",
    ),
    case(
        lambda c: finetune_args(
            c,
            "--data-dir",
            c.file("glue_data/RTE/train.tsv", b"index\tsentence1\tsentence2\tlabel\n0\t\xff\tb\t1\n").parent.parent,
        ),
        "finetune-tsv-not-utf8",
        "is not UTF-8 text",
    ),
    case(
        lambda c: finetune_args(c, "--epochs", "0"),
        "finetune-epochs-zero",
        "--epochs must be positive and finite, got 0.0",
    ),
    case(
        lambda c: finetune_args(c, "--learning-rate", "inf"),
        "finetune-learning-rate-inf",
        "--learning-rate must be positive and finite, got inf",
    ),
    case(
        lambda c: finetune_args(c, "--seed", "-1"),
        "finetune-seed-negative",
        "--seed must be an integer from 0 to 2**32 - 1, got -1",
    ),
    case(
        lambda c: finetune_args(c, "--max-seq-len", "500"),
        "finetune-max-seq-len-over-teacher",
        "--max-seq-len is 500, more than the teacher",
    ),
    case(
        lambda c: finetune_args(c, "--device", "cuda"),
        "finetune-device-cuda-absent",
        "--device cuda: no CUDA device is visible to PyTorch here; use",
        marks=NO_CUDA,
    ),
    # -------------------------------------------------------------------------------------- task files and data
    case(
        lambda c: finetune_args(c, task=c.task_file(metrcs='["accuracy"]')),
        "task-file-unknown-field",
        "x.toml: metrcs: unknown field (did you mean 'metrics'?)",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(metrics='["f1_micro"]')),
        "task-file-unknown-metric",
        "x.toml: metrics: 'f1_micro' is not a metric",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(labels='"regression"')),
        "task-file-metric-misfit",
        "x.toml: metrics: accuracy does not fit a regression task",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(body='text = "review"\n')),
        "task-file-field-missing",
        "x.toml: labels: is required",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(body='text = ["review"\n')),
        "task-file-not-toml",
        "x.toml: not valid TOML",
    ),
    case(lambda c: finetune_args(c, task=c.tmp / "no-such-task.toml"), "task-file-missing", "no such task file"),
    case(
        lambda c: distill_args(
            c,
            "--task",
            c.task_file(
                body='text = "review"\nlabel = "sentiment"\n'
                'labels = ["neg", "pos"]\nmetrics = ["accuracy"]\n'
                '[data]\ntrain = "gone.csv"\nvalidation = "dev.csv"\n'
            ),
        ),
        "task-file-data-file-missing",
        "x.toml: data.train: no such file:",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(train={"sentiment": ["pos", "meh", "neg"]})),
        "task-data-label-outside-names",
        "train.csv: bad label 'meh' in row(s) 2; x labels are neg, pos",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(train={"review": [None, None, None]})),
        "task-data-no-text",
        "train.csv: row(s) 1, 2, 3 have no text in column 'review'",
    ),
    case(
        lambda c: finetune_args(c, task=c.task_file(text='"body"')),
        "task-data-text-column-missing",
        "train.csv: missing column(s) body (columns present: review, sentiment)",
    ),
    case(
        lambda c: finetune_args(
            c, task=c.task_file(labels='"regression"', metrics='["pearson"]', train={"sentiment": ["1", "inf", "2"]})
        ),
        "task-data-regression-label-not-finite",
        "train.csv: bad label inf in row(s) 2; x labels are finite numbers",
    ),
    case(
        lambda c: distill_args(c, "--task", "reviews", "--tasks-dir", c.task_file().parent),
        "task-name-not-in-tasks-dir",
        "unknown task 'reviews'; choose from: x (or pass a task file)",
    ),
    case(lambda c: finetune_args(c, "--tasks-dir", c.tmp / "no-tasks"), "tasks-dir-missing", "does not exist"),
    # ------------------------------------------------------------------------------------------- kdbench distill
    # issue 11, item 1: --overwrite must not delete anything before the run is known to be possible
    case(
        lambda c: ["distill", "--task", "rte", "--student", "7L", "--overwrite", "--output-dir", c.run],
        "distill-overwrite-finished-run-unknown-student",
        "unknown student '7L' (did you mean '9L'?)",
    ),
    case(
        lambda c: distill_args(c, "--data-dir", c.tmp / "no-such-glue", "--overwrite", out=c.run),
        "distill-overwrite-finished-run-missing-data-dir",
        "has no train split for rte: looked for",
    ),
    case(
        lambda c: distill_args(c, "--student", "7L", "--overwrite", out=c.folder("thesis", ("chapter1.tex", "x"))),
        "distill-overwrite-user-folder-unknown-student",
        "is a non-empty folder that kdbench did not write; kdbench never",
    ),
    case(
        lambda c: distill_args(c, "--teacher-checkpoint", c.tmp / "no-such-teacher", "--overwrite", out=c.run),
        "distill-overwrite-finished-run-missing-teacher",
        "does not exist",
    ),
    # issue 11, item 3: --resume with another recipe than the interrupted run's config.json
    case(
        lambda c: distill_args(c, "--resume", "--student", "two_heads", out=c.interrupted()),
        "distill-resume-other-student",
        "was started with another recipe (student 'half_layers' -> 'two_heads')",
    ),
    case(
        lambda c: distill_args(c, "--resume", "--learning-rate", "2e-3", out=c.interrupted()),
        "distill-resume-other-learning-rate",
        "was started with another recipe (learning_rate 0.001 -> 0.002)",
    ),
    case(
        lambda c: distill_args(c, "--resume", "--seed", "7", out=c.interrupted()),
        "distill-resume-other-seed",
        "was started with another recipe (seed 42 -> 7)",
    ),
    case(
        lambda c: distill_args(c, "--resume", "--overwrite", out=c.interrupted()),
        "distill-resume-and-overwrite",
        "--resume and --overwrite exclude each other",
    ),
    case(
        lambda c: distill_args(c, "--resume", out=c.run),
        "distill-resume-finished-run",
        "holds no interrupted run; nothing to continue",
    ),
    case(
        lambda c: distill_args(c, "--resume", out=c.folder("not-a-run", ("notes.txt", "x"))),
        "distill-resume-not-a-run",
        "holds no interrupted run; nothing to continue",
    ),
    case(
        lambda c: distill_args(c, out=c.run),
        "distill-finished-run-without-overwrite",
        "already holds a finished run; pass --overwrite to replace it or",
    ),
    case(
        lambda c: distill_args(c, out=c.interrupted()),
        "distill-interrupted-run-without-resume",
        "holds an interrupted run; pass --resume to continue it or --overwrite",
    ),
    # names and numbers
    case(
        lambda c: distill_args(c, "--student", "half_layer"),
        "distill-student-typo",
        "unknown student 'half_layer' (did you mean 'half_layers'?)",
    ),
    case(
        lambda c: distill_args(c, "--init", "copy"),
        "distill-init-unknown",
        "--init is 'copy'; allowed: teacher, slice, random",
    ),
    case(
        lambda c: distill_args(c, "--feature-loss", "l1"),
        "distill-feature-loss-unknown",
        "--feature-loss is 'l1'; allowed: mse, cosine",
    ),
    case(
        lambda c: distill_args(c, "--alpha-hard", "-1"),
        "distill-alpha-negative",
        "--alpha-hard must be a finite number of at least 0, got -1.0",
    ),
    case(
        lambda c: distill_args(c, "--temperature", "0"),
        "distill-temperature-zero",
        "--temperature must be positive and finite, got 0.0",
    ),
    case(
        lambda c: distill_args(c, "--seed", "-1"),
        "distill-seed-negative",
        "--seed must be an integer from 0 to 2**32 - 1, got -1",
    ),
    case(
        lambda c: distill_args(c, "--max-seq-len", "500"),
        "distill-max-seq-len-over-teacher",
        "--max-seq-len is 500, more than the teacher",
    ),
    case(
        lambda c: distill_args(c, "--device", "tpu"),
        "distill-device-unknown",
        "--device is 'tpu' (did you mean 'cpu'?); allowed: cpu, cuda",
    ),
    # files and folders
    case(
        lambda c: distill_args(c, out=c.file("run-file", "precious")),
        "distill-output-dir-is-a-file",
        "is a file, not a folder",
    ),
    case(
        lambda c: distill_args(c, out=c.read_only("locked") / "run"), "distill-output-dir-read-only", "is not writable"
    ),
    case(
        lambda c: distill_args(c, "--students-dir", c.zoo_with(NOT_UTF8)), "distill-toml-not-utf8", "is not UTF-8 text"
    ),
    case(
        lambda c: distill_args(c, "--student", "deep", "--students-dir", c.zoo_with("layers = 9\n", "deep.toml")),
        "distill-toml-deeper-than-teacher",
        "resolves to 9, more than the teacher's 4",
    ),
    case(
        lambda c: distill_args(c, "--teacher-checkpoint", c.folder("no-config", ("x.txt", "x"))),
        "distill-teacher-checkpoint-no-config",
        "has no config.json; pass a Hugging Face model folder",
    ),
    case(
        lambda c: distill_args(
            c, "--teacher-checkpoint", (c.teacher / "model.safetensors").write_bytes(b"\x00garbage") and c.teacher
        ),
        "distill-teacher-checkpoint-corrupt-weights",
        "Error while deserializing header: header too large",
    ),
    case(
        lambda c: distill_args(c, "--task", "stsb", "--data-dir", c.stsb_labels(float("nan"))),
        "distill-stsb-nan-label",
        "bad label nan in row(s) 1; stsb labels are finite numbers",
    ),
    case(
        lambda c: ["distill", "--task", "rte", "--output-dir", c.out],
        "distill-student-option-missing",
        "--student is required (or --resume with the --output-dir of an",
    ),
    # -------------------------------------------------------------------------------------------- kdbench export
    case(lambda c: ["export", c.tmp / "no-such-run"], "export-missing-folder", "does not exist or is empty"),
    case(
        lambda c: ["export", c.folder("not-a-run", ("notes.txt", "x"))],
        "export-not-a-run",
        "is not a kdbench run folder",
    ),
    case(lambda c: ["export", c.file("run.json", "{}")], "export-file-not-folder", "is a file, not a run folder"),
    case(lambda c: ["export", c.bare_run, "--opset", "3"], "export-opset-3", "--opset is 3; allowed: 14 to"),
    case(
        lambda c: ["export", c.bare_run, "--optimize", "O9"],
        "export-optimize-unknown",
        "--optimize is 'O9' (did you mean 'O3'?); allowed: O1, O2, O3",
    ),
    case(
        lambda c: ["export", c.bare_run, "--quantize", "int4"],
        "export-quantize-unknown",
        "--quantize is 'int4' (did you mean 'int8'?); allowed: int8",
    ),
    case(
        lambda c: ["export", c.bare_run, "--parity-samples", "0"],
        "export-parity-samples-zero",
        "--parity-samples must be a positive integer, got 0",
    ),
    case(
        lambda c: ["export", (c.bare_run / "config.json").write_bytes(b'{"task": "\xff"}') and c.bare_run],
        "export-config-not-utf8",
        "is not a kdbench run folder",
    ),
    case(
        lambda c: ["export", (c.bare_run / "config.json").write_text('{"foo": 1}') and c.bare_run],
        "export-config-wrong-schema",
        "is not a kdbench run folder",
    ),
    case(
        lambda c: [
            "export",
            c.json_edit(c.bare_run / "config.json", lambda d: d.update(data_dir=str(c.tmp / "gone"))).parent,
        ],
        "export-data-dir-gone",
        "has no validation split for rte: looked for",
    ),
    case(
        lambda c: ["export", (c.bare_run / "student" / "model.safetensors").write_bytes(b"\x00junk") and c.bare_run],
        "export-student-corrupt-weights",
        "Error while deserializing header: header too small",
    ),
    case(
        lambda c: ["export", (c.run / "onnx" / "parity.json").write_text("{not json") and c.run],
        "export-parity-json-corrupt",
        "is not valid JSON (line 1: Expecting property name enclosed in double",
    ),
    # ------------------------------------------------------------------------------------------ kdbench evaluate
    case(
        lambda c: ["evaluate", c.folder("not-a-run", ("notes.txt", "x"))],
        "evaluate-not-a-run",
        "is not a kdbench run folder",
    ),
    case(lambda c: ["evaluate", c.file("run.json", "{}")], "evaluate-file-not-folder", "is a file, not a run folder"),
    case(
        lambda c: ["evaluate", c.run, "--backend", "tensorrt"],
        "evaluate-backend-unknown",
        "--backend is 'tensorrt'; allowed: torch, onnxruntime",
    ),
    case(
        lambda c: ["evaluate", c.run, "--backend", "torch", "--variant", "int8"],
        "evaluate-torch-with-variant",
        "--variant is 'int8'; allowed: fp32, bf16, fp16",
    ),
    case(
        lambda c: ["evaluate", c.run, "--variant", "O9"],
        "evaluate-variant-unknown",
        "--variant is 'O9' (did you mean 'O3'?); allowed: fp32, O1, O2, O3,",
    ),
    case(
        lambda c: ["evaluate", c.bare_run],
        "evaluate-nothing-exported",
        "has no exported 'fp32' variant (exported: none); run `kdbench export",
    ),
    case(
        lambda c: ["evaluate", c.run, "--max-eval-samples", "0"],
        "evaluate-max-eval-samples-zero",
        "--max-eval-samples must be positive, got 0",
    ),
    case(
        lambda c: [
            "evaluate",
            c.json_edit(c.run / "onnx" / "parity.json", lambda d: d["fp32"].pop("path")).parent.parent,
            "--variant",
            "fp32",
        ],
        "evaluate-parity-entry-without-path",
        "entry 'fp32' lacks path; run `kdbench export` again",
    ),
    case(
        lambda c: ["evaluate", c.json_set(c.run / "onnx" / "parity.json", {"fp32": "yes"}).parent.parent],
        "evaluate-parity-entry-not-a-mapping",
        "entry 'fp32' lacks path, passed; run `kdbench export` again",
    ),
    case(
        lambda c: ["evaluate", (c.run / "onnx" / "parity.json").write_bytes(b'{"fp32": "\xff"}') and c.run],
        "evaluate-parity-not-utf8",
        "is not UTF-8 text",
    ),
    case(
        lambda c: [
            "evaluate",
            c.json_edit(c.run / "onnx" / "parity.json", lambda d: d["fp32"].update(passed=False)).parent.parent,
        ],
        "evaluate-failed-parity-without-force",
        "the fp32 export failed its parity check",
    ),
    case(
        lambda c: ["evaluate", (c.run / "onnx" / "fp32" / "model.onnx").write_bytes(b"\x08\x01garbage") and c.run],
        "evaluate-onnx-corrupt",
        "is not the file its parity check measured (changed since, or an",
    ),
    case(
        lambda c: [
            "evaluate",
            (c.run / "student" / "model.safetensors").write_bytes(b"\x00junk") and c.run,
            "--backend",
            "torch",
        ],
        "evaluate-torch-student-corrupt-weights",
        "Error while deserializing header: header too small",
    ),
    # -------------------------------------------------------------------------------------------- kdbench report
    case(lambda c: ["report", c.tmp / "no-such-input", "-o", c.out], "report-input-missing", "no such file or folder"),
    case(
        lambda c: ["report", c.folder("empty"), "-o", c.out],
        "report-input-empty-folder",
        "found no profile results or run folders in",
    ),
    case(
        lambda c: ["report", c.run, "-o", c.file("REPORT.md", "my notes")],
        "report-output-is-a-file",
        "is a file, not a folder",
    ),
    case(
        lambda c: ["report", c.run, "-o", c.read_only("locked") / "report"],
        "report-output-read-only",
        "is not writable",
    ),
    case(
        lambda c: ["report", c.file("result.json", b'{"schema": "kdbench.profile", "x": "\xff"}'), "-o", c.out],
        "report-input-not-utf8",
        "is not UTF-8 text",
    ),
    case(
        lambda c: ["report", c.file("result.json", ""), "-o", c.out],
        "report-input-empty-file",
        "is not valid JSON (line 1: Expecting value",
    ),
    case(
        lambda c: [
            "report",
            c.profile,
            c.json_edit(c.profile2, lambda d: d["settings"].update(batch_sizes=[64])),
            "-o",
            c.out,
        ],
        "report-mixed-grids",
        "the profile results were measured on 2 different grids (batch sizes,",
    ),
    case(
        lambda c: [
            "report",
            c.json_set(c.run / "metrics.json", {"schema": "kdbench.distill", "task": "rte"}).parent,
            "-o",
            c.out,
        ],
        "report-run-metrics-wrong-schema",
        "a kdbench.distill file without student",
    ),
    case(
        lambda c: ["report", (c.run / "eval").mkdir() or (c.run / "eval" / "x.json").write_text("{") and c.run],
        "report-run-eval-corrupt",
        "is not valid JSON (line 1: Expecting property name enclosed in double",
    ),
    # --------------------------------------------------------------------------------------------- kdbench study
    case(lambda c: ["study", c.tmp / "no-such-study.yaml"], "study-file-missing", "no such study file"),
    case(lambda c: ["study", c.folder("study.yaml")], "study-file-is-a-folder", "is a folder, not a file"),
    case(
        lambda c: ["study", c.study(), "--executor", "slurm"],
        "study-executor-unknown",
        "--executor is 'slurm'; allowed: local, ray",
    ),
    case(
        lambda c: ["study", c.study(), "--cell-resources", "train=cpu:1"],
        "study-cell-resources-unknown-kind",
        "--cell-resources takes KIND=cpu:N,gpu:M",
    ),
    case(
        lambda c: ["study", c.study(), "--cell", "distill/rte/half_layer/s7/f1.0"],
        "study-cell-unknown",
        "unknown cell 'distill/rte/half_layer/s7/f1.0' (did you mean 'distill/rte/half_layers/s7/f1.0'?)",
    ),
    case(
        lambda c: ["study", c.study(), "--time-limit", "soon"],
        "study-time-limit-malformed",
        "--time-limit is 'soon'; expected a duration such as 90s, 45m or 2h",
    ),
    case(
        lambda c: ["study", c.study(), "--time-limit", "-5m"],
        "study-time-limit-negative",
        "--time-limit must be positive, got '-5m",
    ),
    case(
        lambda c: ["study", c.study(), "--report"],
        "study-report-nothing-finished",
        "holds no finished run yet; nothing to report",
    ),
    case(
        lambda c: ["study", c.study(), "--data-dir", c.tmp / "no-such-glue"],
        "study-data-dir-missing",
        "is not a folder (pass --data-dir with a GLUE copy",
    ),
    case(lambda c: ["study", c.study(), "--jobs", "0"], "study-jobs-zero", "--jobs must be at least 1, got 0"),
    case(
        lambda c: ["study", c.study({"output_dir": str(c.file("out-file", "precious"))})],
        "study-output-dir-is-a-file",
        "is a file, not a folder",
    ),
    # -------------------------------------------------------------------------------------------- kdbench compare
    case(lambda c: ["compare", c.tmp / "nope.json", c.profile], "compare-baseline-missing", "no such file or folder"),
    case(
        lambda c: ["compare", c.folder("empty"), c.profile],
        "compare-baseline-empty-folder",
        "holds no *.json result files",
    ),
    case(
        lambda c: ["compare", c.file("b.json", b'{"schema": "\xff"}'), c.profile],
        "compare-baseline-not-utf8",
        "is not UTF-8 text",
    ),
    case(
        lambda c: ["compare", c.file("b.json", ""), c.profile],
        "compare-baseline-empty-file",
        "is not valid JSON (line 1: Expecting value",
    ),
    case(
        lambda c: ["compare", c.file("b.json", '{"a": 1}'), c.profile],
        "compare-baseline-wrong-schema",
        "is neither a kdbench profile result nor a pytest-benchmark JSON file",
    ),
    case(
        lambda c: ["compare", c.run / "metrics.json", c.profile],
        "compare-distill-metrics-file",
        "is a kdbench.distill file, not profile results",
    ),
    case(
        lambda c: ["compare", c.file("b.json", '{"machine_info": {}, "benchmarks": ["x"]}'), c.bench],
        "compare-benchmark-entries-not-mappings",
        "every entry of 'benchmarks' must be an object with 'stats', got 'x",
    ),
    case(lambda c: ["compare", c.profile, c.bench], "compare-incompatible-kinds", "with pytest-benchmark results"),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--stat", "p42"],
        "compare-stat-unknown",
        "--stat is 'p42'; allowed: min, p50, mean, p90",
    ),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--threshold", "4AH"],
        "compare-threshold-malformed",
        "--threshold takes STUDENT=PERCENT (e.g. 3L=20%), got '4AH",
    ),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--threshold", "nobody=10%"],
        "compare-threshold-unknown-student",
        "--threshold names student(s) not in both results: nobody",
    ),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--max-slowdown", "abc"],
        "compare-max-slowdown-malformed",
        "--max-slowdown takes a percentage such as 10% or 0.1, got 'abc",
    ),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--max-slowdown", "-5%"],
        "compare-max-slowdown-negative",
        "--max-slowdown takes a percentage such as 10% or 0.1, got '-5%",
    ),
    case(
        lambda c: [
            "compare",
            c.profile,
            c.json_edit(c.profile2, lambda d: [x.update(student="other") for x in d["cells"]]),
        ],
        "compare-no-common-cell",
        "the two result sets share no cell (student and grid point); nothing",
    ),
    case(
        lambda c: ["compare", c.profile, c.profile2, "--json", c.folder("json-folder")],
        "compare-json-is-a-folder",
        "Is a directory",
    ),
    # ----------------------------------------------------------------------------------------- the command itself
    case(lambda c: ["profil"], "cli-command-typo", "No such command 'profil'. Did you mean 'profile'?"),
]

# issue 11, item 8: a study file with a bad value fails when it is loaded, for --list and for a real run alike
BAD_STUDIES = [
    (
        "profile-batch-size-zero",
        "profile.batch_sizes: must be positive integers, got [0]",
        lambda c: c.study({"profile": {"batch_sizes": [0]}}),
    ),
    (
        "profile-backend-tpu",
        "profile.backends: is 'tpu'; allowed: torch, torch-compile,",
        lambda c: c.study({"profile": {"backends": ["tpu"]}}),
    ),
    (
        "export-optimize-O9",
        "export.optimize: is 'O9' (did you mean 'O3'?)",
        lambda c: c.study({"export": {"optimize": "O9", "parity_samples": 8}}),
    ),
    (
        "seeds-not-numbers",
        "main.seeds: must be a list of integers (or a mapping task -> list),",
        lambda c: c.study({"seeds": "forty-two"}),
    ),
    (
        "task-unknown",
        "main.tasks: unknown task 'rtee' (did you mean 'rte'?); choose from:",
        lambda c: c.study({"tasks": ["rtee"]}),
    ),
    (
        "student-unknown",
        "main.students: unknown student 'half_layer' (did you mean",
        lambda c: c.study({"students": ["half_layer"]}),
    ),
    (
        "train-device-tpu",
        "train.device: is 'tpu' (did you mean 'cpu'?); allowed: cpu, cuda",
        lambda c: c.study({"train": {**TRAIN, "device": "tpu"}}),
    ),
    (
        "train-learning-rate-negative",
        "train.learning_rate: must be positive and finite, got -1",
        lambda c: c.study({"train": {**TRAIN, "learning_rate": -1}}),
    ),
    (
        "train-fraction-zero",
        "main.train_fractions: must be a list of numbers in (0, 1] (or a",
        lambda c: c.study({"train_fractions": [0]}),
    ),
    (
        "train-fraction-above-one",
        "main.train_fractions: must be a list of numbers in (0, 1] (or a",
        lambda c: c.study({"train_fractions": [1.5]}),
    ),
    ("tasks-empty", "field 'tasks' is required", lambda c: c.study({"tasks": []})),
    ("empty-file", "a study file is a mapping of fields", lambda c: c.study(raw=b"")),
    ("not-utf8", "is not UTF-8 text", lambda c: c.study(raw=b"name: x\ntasks: [rte]\nstudents: [\xff\xfe]\n")),
]
for _name, _fragment, _make in BAD_STUDIES:
    CASES.append(case(lambda c, m=_make: ["study", m(c), "--list"], f"study-list-{_name}", _fragment))
    CASES.append(case(lambda c, m=_make: ["study", m(c)], f"study-run-{_name}", _fragment))


# ------------------------------------------------------------------------------------------------ the one test
def snapshot(roots: list[Path]) -> dict[str, tuple]:
    """{path: (is_dir, sha256, mode)} of every folder and file under `roots` (the roots themselves included)."""
    out: dict[str, tuple] = {}
    for root in roots:
        if not root.exists():
            out[f"{root}"] = ("absent",)
            continue
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            here = Path(folder)
            out[str(here)] = (True, None, stat.S_IMODE(os.lstat(here).st_mode))
            for name in sorted(files):
                p = here / name
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    digest = "link:" + os.readlink(p)
                else:
                    digest = hashlib.sha256(p.read_bytes()).hexdigest()
                out[str(p)] = (False, digest, stat.S_IMODE(st.st_mode))
    return out


def _changes(before: dict, after: dict) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [f"+{p}" for p in added] + [f"-{p}" for p in removed] + [f"~{p}" for p in changed]


runner = CliRunner()


@pytest.mark.parametrize("build, fragment", CASES)
def test_bad_input_is_one_line_status_2_and_writes_nothing(build, fragment, base, tmp_path, monkeypatch):
    case_dir = tmp_path / "case"
    case_dir.mkdir()
    monkeypatch.chdir(case_dir)  # default output paths (runs/, reports/) land inside the snapshot
    ctx = Ctx(case_dir, base)
    argv = [str(a) for a in build(ctx)]
    roots = [case_dir, Path(os.environ["KDBENCH_CACHE"]), base.root]
    before = snapshot(roots)
    try:
        result = runner.invoke(app, argv)
        after = snapshot(roots)
    finally:
        for p in ctx.immutable:
            subprocess.run(["chattr", "-i", str(p)], check=True)
        for p in [case_dir, *case_dir.rglob("*")]:  # let pytest clean up after a read-only case
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)

    err = result.stderr.rstrip()  # a blank line before the error counts as a second line
    problems = []
    if result.exit_code != 2:
        problems.append(f"exit {result.exit_code}")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        problems.append(f"raised {type(result.exception).__name__}: {str(result.exception)[:120]!r}")
    if "Traceback" in result.stdout or "Traceback" in result.stderr:
        problems.append("traceback printed")
    lines = err.splitlines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    if fragment.lower() not in " ".join(err.split()).lower():
        problems.append(f"stderr lacks {fragment!r}")
    changes = _changes(before, after)
    if changes:
        names = {str(case_dir): "<case>", str(base.root): "<base>", os.environ["KDBENCH_CACHE"]: "<cache>"}
        shown = changes
        for where, label in names.items():
            shown = [c.replace(where, label) for c in shown]
        problems.append(f"{len(changes)} path(s) changed: {', '.join(shown[:8])}" + (" ..." if len(shown) > 8 else ""))
    assert not problems, "; ".join(problems) + f"\nargv: {argv}\nstderr: {result.stderr[-2000:]}"
