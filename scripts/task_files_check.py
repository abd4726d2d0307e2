"""Tasks as files, on real data (issue 24): the figures its closing note asks for.

    python3 scripts/task_files_check.py --teacher MINILM_DIR [--glue ../shared/glue] [--work /tmp/task-files]

1. SST-2 and MRPC rewritten as CSV and as JSON Lines, with other column names and string labels, distilled with the
   same teacher, student, seed, rows and epochs as the built-in GLUE path: the scores must be the same.
2. A task that is not GLUE-shaped: STS-B's similarity scores binned into 20 classes (s00-s19, a quarter point each),
   through distill, export (fp32 and int8) and evaluate, with the truncation the distillation states.
Prints one table per part; every run folder stays under --work.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

RECIPE = ["--student", "6L", "--epochs", "1", "--seed", "42"]
ROWS = {"sst2": 1000, "mrpc": 800}
RENAMED = {  # GLUE column -> the rewritten files' column, and the label names in GLUE's id order
    "sst2": ({"sentence": "review"}, "sentiment", ["negative", "positive"]),
    "mrpc": ({"sentence1": "first", "sentence2": "second"}, "paraphrase", ["no", "yes"]),
}


def kdbench(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "kdbench", *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"kdbench {' '.join(map(str, args))} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def rewrite(glue: Path, task: str, work: Path) -> dict[str, Path]:
    """The task's splits as CSV and JSON Lines with its renamed columns and string labels, and a task file each."""
    columns, label, names = RENAMED[task]
    files = {}
    for fmt, suffix in (("csv", "csv"), ("jsonl", "jsonl")):
        folder = work / f"{task}-{fmt}"
        folder.mkdir(parents=True, exist_ok=True)
        for split in ("train", "validation"):
            frame = pd.read_parquet(glue / task / f"{split}.parquet")
            frame = frame.rename(columns=columns).assign(**{label: [names[i] for i in frame["label"]]})
            frame = frame.drop(columns=["label", "idx"])
            path = folder / f"{split}.{suffix}"
            frame.to_csv(path, index=False) if fmt == "csv" else frame.to_json(path, orient="records", lines=True)
        metrics = '["accuracy"]' if task == "sst2" else '["f1", "accuracy"]'
        (folder / "task.toml").write_text(
            f'name = "{task}-{fmt}"\ntext = {json.dumps(list(columns.values()))}\nlabel = "{label}"\n'
            f"labels = {json.dumps(names)}\nmetrics = {metrics}\n"
            f'[data]\ntrain = "train.{suffix}"\nvalidation = "validation.{suffix}"\n'
        )
        files[fmt] = folder / "task.toml"
    return files


def score(run: Path) -> tuple[float, float, int]:
    doc = json.loads((run / "metrics.json").read_text())
    return doc["score"], doc["teacher_score"], doc["train_samples"]


def part_one(args, work: Path) -> None:
    print("| task | source | training rows | student | teacher | same as GLUE |\n|---|---|---|---|---|---|")
    for task, rows in ROWS.items():
        sources = {"GLUE (built-in)": ["--task", task, "--data-dir", args.glue]}
        sources.update({fmt: ["--task", path] for fmt, path in rewrite(args.glue, task, work).items()})
        reference = None
        for label, how in sources.items():
            run = work / "runs" / f"{task}-{label.split()[0].lower()}"
            if not (run / "metrics.json").is_file():
                kdbench("distill", *how, "--teacher", args.teacher, "--max-train-samples", rows, *RECIPE,
                        "--output-dir", run)  # fmt: skip
            got = score(run)
            reference = reference or got
            same = "yes" if got == reference else "NO"
            print(f"| {task} | {label} | {got[2]} | {got[0]:.4f} | {got[1]:.4f} | {same} |")


def part_two(args, work: Path) -> None:
    folder = work / "stsb20"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"s{i:02d}" for i in range(20)]
    for split in ("train", "validation"):
        frame = pd.read_parquet(args.glue / "stsb" / f"{split}.parquet")
        bins = (frame["label"] * 4).astype(int).clip(0, 19)  # a quarter point of similarity per class
        frame.assign(similarity=[names[b] for b in bins]).drop(columns=["label", "idx"]).to_csv(
            folder / f"{split}.csv", index=False
        )
    task = folder / "stsb20.toml"
    task.write_text(
        'name = "stsb20"\ndescription = "STS-B similarity in 20 classes of a quarter point"\n'
        'text = ["sentence1", "sentence2"]\nlabel = "similarity"\n'
        f'labels = {json.dumps(names)}\nmetrics = ["accuracy", "f1_macro"]\n'
        '[data]\ntrain = "train.csv"\nvalidation = "validation.csv"\n'
    )
    run = work / "runs" / "stsb20-6L"
    if not (run / "metrics.json").is_file():
        said = kdbench("distill", "--task", task, "--teacher", args.teacher, "--max-train-samples", 2000,
                       "--max-seq-len", 48, *RECIPE, "--output-dir", run)  # fmt: skip
        print("\n".join(line for line in said.splitlines() if "truncated" in line))
    kdbench("export", run, "--quantize", "int8")
    for variant in ("fp32", "int8"):
        kdbench("evaluate", run, "--variant", variant)
    doc = json.loads((run / "metrics.json").read_text())
    evals = {e.stem: json.loads(e.read_text()) for e in sorted((run / "eval").glob("*.json"))}
    parity = json.loads((run / "onnx" / "parity.json").read_text())
    print("\n| model | engine | accuracy | macro F1 |\n|---|---|---|---|")
    t = doc["teacher_metrics"]["metrics"]["validation"]
    print(f"| teacher | PyTorch | {t['accuracy']:.4f} | {t['f1_macro']:.4f} |")
    s = doc["metrics"]["validation"]
    print(f"| 6L | PyTorch | {s['accuracy']:.4f} | {s['f1_macro']:.4f} |")
    for name, e in evals.items():
        m = e["metrics"]["validation"]
        print(f"| 6L | {name} | {m['accuracy']:.4f} | {m['f1_macro']:.4f} |")
    rows = doc["truncated"]["rows"]
    print(
        f"\n20 classes; {doc['train_samples']} training rows; cut to {doc['truncated']['max_seq_len']} tokens: "
        + ", ".join(f"{n} {split} rows" for split, n in rows.items())
        + f"; int8 parity {parity['int8']['argmax_agreement']:.1%} argmax agreement"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", required=True, type=Path)
    parser.add_argument("--glue", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "glue")
    parser.add_argument("--work", type=Path, default=Path("/tmp/task-files"))
    args = parser.parse_args()
    part_one(args, args.work)
    part_two(args, args.work)


if __name__ == "__main__":
    main()
