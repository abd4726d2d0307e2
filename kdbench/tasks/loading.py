"""Loading a task's splits from the hub or local copies (parquet or classic TSV), checking them, and tokenisation.

Local layouts understood by `--data-dir`:
  (a) `<dir>/<task>/<split>.parquet` with the hub's column names and label ids (e.g. `glue/rte/train.parquet`);
  (b) the classic `glue_data/` TSV folders (`RTE/train.tsv`, `CoLA/train.tsv` without a header,
      `MNLI/dev_matched.tsv`, `MRPC/msr_paraphrase_train.txt` or `MRPC/train.tsv`, ...).
"""

from __future__ import annotations

import csv
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.tasks.task import Task

HUB_DATASET = "nyu-mll/glue"


# --------------------------------------------------------------------------------------------------- TSV layout
# For each task and split: candidate files, whether they have a header, and how to read (texts..., label) from a row.
def _tsv_files(task: Task, split: str) -> list[str]:
    if split == "train":
        return ["msr_paraphrase_train.txt", "train.tsv"] if task.name == "mrpc" else ["train.tsv"]
    if task.name == "mnli":
        return ["dev_matched.tsv"] if split == "validation_matched" else ["dev_mismatched.tsv"]
    return ["msr_paraphrase_test.txt", "dev.tsv"] if task.name == "mrpc" else ["dev.tsv"]


_TSV_COLUMNS = {  # header names of (text fields..., label) in the classic files
    "sst2": ("sentence", "label"),
    "mrpc": ("#1 String", "#2 String", "Quality"),
    "stsb": ("sentence1", "sentence2", "score"),
    "qqp": ("question1", "question2", "is_duplicate"),
    "mnli": ("sentence1", "sentence2", "gold_label"),
    "qnli": ("question", "sentence", "label"),
    "rte": ("sentence1", "sentence2", "label"),
    "wnli": ("sentence1", "sentence2", "label"),
}


def _read_tsv(task: Task, path: Path) -> dict[str, list]:
    cols: dict[str, list] = {f: [] for f in task.text_fields} | {"label": []}
    from kdbench.core.io import read_text

    rows = list(csv.reader(read_text(path, "data file").splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE))
    if task.name == "cola":  # no header: source, label, original label, sentence
        for i, row in enumerate(rows, 1):
            if len(row) < 4:
                raise KdbenchError(f"{path}: row {i} has {len(row)} columns, CoLA rows have 4")
            cols["sentence"].append(row[3])
            cols["label"].append(row[1])
        return cols
    if not rows:
        return cols
    header, names = rows[0], _TSV_COLUMNS[task.name]
    missing = [n for n in names if n not in header]
    if missing:
        raise KdbenchError(f"{path}: header lacks column(s) {', '.join(missing)}")
    idx = [header.index(n) for n in names]
    for i, row in enumerate(rows[1:], 2):
        if len(row) <= max(idx):
            raise KdbenchError(f"{path}: row {i} has {len(row)} columns, expected at least {max(idx) + 1}")
        for field, j in zip((*task.text_fields, "label"), idx, strict=True):
            cols[field].append(row[j])
    return cols


def _convert_labels(task: Task, raw: list, source: str) -> list:
    out = []
    for i, value in enumerate(raw, 1):
        if task.label_names and isinstance(value, str) and value in task.label_names:
            out.append(task.label_names.index(value))
            continue
        try:
            out.append(float(value) if task.is_regression else int(value))
        except (TypeError, ValueError):
            raise KdbenchError(f"{source}: row {i} has label {value!r}, which is not a {task.name} label") from None
    return out


# ------------------------------------------------------------------------------------------------------ loading
def _local_split(task: Task, data_dir: Path, split: str):
    from datasets import Dataset

    parquet = data_dir / task.name / f"{split}.parquet"
    if parquet.is_file():
        import pyarrow.parquet as pq

        try:
            ds = Dataset(pq.read_table(str(parquet)))  # in memory: GLUE splits are small, and no cache files appear
        except Exception as exc:  # pyarrow raises several types for broken files
            raise KdbenchError(f"{parquet}: not a readable parquet file ({type(exc).__name__})") from None
        return ds, str(parquet)
    for name in _tsv_files(task, split):
        path = data_dir / task.tsv_dir / name
        if path.is_file():
            cols = _read_tsv(task, path)
            cols["label"] = _convert_labels(task, cols["label"], str(path))
            return Dataset.from_dict(cols), str(path)
    raise KdbenchError(
        f"{data_dir} has no {split} split for {task.name}: looked for {parquet} and "
        f"{task.tsv_dir}/{' or '.join(_tsv_files(task, split))}"
    )


def _valid_label(task: Task, label) -> bool:
    """A finite number (STS-B), or a whole class id in range; NaN, inf, None and 0.5 are not labels."""
    import math
    import numbers

    if label is None or isinstance(label, bool) or not isinstance(label, numbers.Real):
        return False
    if not math.isfinite(label):
        return False
    return task.is_regression or (float(label).is_integer() and 0 <= int(label) < task.num_labels)


def _check_split(task: Task, ds, source: str):
    """Columns present, not empty, labels in range; rows with empty text are malformed."""
    missing = [c for c in (*task.text_fields, "label") if c not in ds.column_names]
    if missing:
        raise KdbenchError(f"{source}: missing column(s) {', '.join(missing)} (expected the hub's GLUE names)")
    if len(ds) == 0:
        raise KdbenchError(f"{source}: the split is empty")
    bad = [i + 1 for i, label in enumerate(ds["label"]) if not _valid_label(task, label)]
    if bad:
        first = ds["label"][bad[0] - 1]
        allowed = "finite numbers" if task.is_regression else f"0..{task.num_labels - 1}"
        rows = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise KdbenchError(f"{source}: bad label {first!r} in row(s) {rows}; {task.name} labels are {allowed}")
    for f in task.text_fields:
        for i, text in enumerate(ds[f]):
            if not isinstance(text, str):
                raise KdbenchError(f"{source}: row {i + 1} has no text in column {f!r}")
    return ds.select_columns([*task.text_fields, "label"])


def load_task(
    task: Task,
    data_dir: Path | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    splits: tuple[str, ...] | None = None,
):
    """Train and evaluation splits (or just `splits`) as a datasets.DatasetDict, checked and optionally cut down.

    Cuts take the first N rows (local copies may already be shuffled, as ../shared/glue's SST-2 is).
    """
    from datasets import DatasetDict

    splits = splits or ("train", *task.eval_splits)
    out = {}
    for split in splits:
        if data_dir is None:
            ds, source = _hub_split(task, split), f"{HUB_DATASET}/{task.name}:{split}"
        else:
            ds, source = _local_split(task, Path(data_dir), split)
        ds = _check_split(task, ds, source)
        limit = max_train_samples if split == "train" else max_eval_samples
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        out[split] = ds
    return DatasetDict(out)


def _hub_split(task: Task, split: str):
    from datasets import load_dataset

    try:
        return load_dataset(HUB_DATASET, task.name, split=split)
    except Exception as exc:  # offline, or the hub refused: say so in one line
        raise KdbenchError(
            f"cannot load {task.name} from the Hugging Face hub ({type(exc).__name__}); "
            "pass --data-dir with a local copy"
        ) from None


def tokenize(dataset_dict, task: Task, tokenizer, max_seq_len: int):
    """Tokenise every split without padding (batches are padded dynamically); keep a `length` column for
    length-grouped batching."""

    def encode(batch):
        texts = [batch[f] for f in task.text_fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_seq_len)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        enc["labels"] = batch["label"]
        return enc

    columns = [*task.text_fields, "label"]
    return dataset_dict.map(encode, batched=True, remove_columns=columns, desc="tokenizing")
