"""Loading a task's splits, checking them, and tokenisation.

Where the splits come from, by the task file's [data]: its local files (CSV, TSV, JSON Lines, parquet, read with
`datasets`' local loaders), or its hub dataset - or, for a hub task given `--data-dir`, a local copy of it:
  (a) `<dir>/<task>/<split>.parquet` with the hub's column names and label ids (e.g. `glue/rte/train.parquet`);
  (b) for GLUE, the classic `glue_data/` TSV folders (`RTE/train.tsv`, `CoLA/train.tsv` without a header,
      `MNLI/dev_matched.tsv`, `MRPC/msr_paraphrase_train.txt` or `MRPC/train.tsv`, ...).
Every split comes out with the task's text columns and a `label` column of class ids (string labels mapped through
the task's label names) or finite scores; a bad row fails the load with the file and the first bad rows.
"""

from __future__ import annotations

import csv
from pathlib import Path

from kdbench.core.errors import KdbenchError
from kdbench.tasks.task import Task


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


# ------------------------------------------------------------------------------------------------------ loading
def _local_split(task: Task, data_dir: Path, split: str):
    """A split of a hub task from a local copy: parquet in <dir>/<task>/, else GLUE's classic TSV layout."""
    from datasets import Dataset

    parquet = data_dir / task.name / f"{split}.parquet"
    if parquet.is_file():
        import pyarrow.parquet as pq

        try:
            ds = Dataset(pq.read_table(str(parquet)))  # in memory: GLUE splits are small, and no cache files appear
        except Exception as exc:  # pyarrow raises several types for broken files
            raise KdbenchError(f"{parquet}: not a readable parquet file ({type(exc).__name__})") from None
        return ds, str(parquet)
    tried = [str(parquet)]
    if task.tsv_dir:
        for name in _tsv_files(task, split):
            path = data_dir / task.tsv_dir / name
            if path.is_file():
                return Dataset.from_dict(_read_tsv(task, path)), str(path)
        tried.append(f"{task.tsv_dir}/{' or '.join(_tsv_files(task, split))}")
    raise KdbenchError(f"{data_dir} has no {split} split for {task.name}: looked for {' and '.join(tried)}")


def _file_split(task: Task, split: str):
    """A split of a task with local files, read whole into memory with `datasets`' local loaders (a temporary cache
    folder, gone afterwards: loading writes nothing of its own)."""
    import tempfile

    from datasets import load_dataset

    from kdbench.tasks.task import FORMATS

    path = Path(task.files[split])
    fmt = FORMATS[path.suffix.lower()]
    options = {"delimiter": "\t"} if fmt == "tsv" else {}
    try:
        with tempfile.TemporaryDirectory(prefix="kdbench-load-") as cache:
            ds = load_dataset(
                "csv" if fmt == "tsv" else fmt,
                data_files=str(path),
                split="train",
                cache_dir=cache,
                keep_in_memory=True,
                **options,
            )
    except FileNotFoundError:
        raise KdbenchError(f"{task.source}: data.{split}: no such file: {path}") from None
    except Exception as exc:  # malformed CSV/JSON/parquet: pandas, pyarrow and datasets raise their own types
        if "corresponds to no data" in str(exc):  # datasets' word for a file of no rows (a header at most)
            raise KdbenchError(f"{path}: the split is empty") from None
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise KdbenchError(f"{path}: not a readable {fmt} file ({first})") from None
    return ds, str(path)


def _valid_label(task: Task, label) -> bool:
    """A finite number (regression), or a whole class id in range; NaN, inf, None and 0.5 are not labels."""
    import math
    import numbers

    if label is None or isinstance(label, bool) or not isinstance(label, numbers.Real):
        return False
    if not math.isfinite(label):
        return False
    return task.is_regression or (float(label).is_integer() and 0 <= int(label) < task.num_labels)


def _label_ids(task: Task, labels: list) -> list:
    """Labels as class ids (a label name becomes its index; a numeric string, its number) or scores; what cannot be
    read stays as it was, for the check to name."""
    out = []
    for value in labels:
        if isinstance(value, str):
            text = value.strip()
            if not task.is_regression and text in task.label_names:
                value = task.label_names.index(text)
            else:
                try:
                    value = float(text) if task.is_regression else int(text)
                except ValueError:
                    pass
        out.append(value)
    return out


def _rows(bad: list[int]) -> str:
    return ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")


def _check_split(task: Task, ds, source: str):
    """Columns present, not empty, labels readable and in range, text in every row; returns the split with the text
    columns and `label` (ids or scores)."""
    missing = [c for c in (*task.text_fields, task.label_column) if c not in ds.column_names]
    if missing:
        present = ", ".join(ds.column_names) or "none"
        raise KdbenchError(f"{source}: missing column(s) {', '.join(missing)} (columns present: {present})")
    if len(ds) == 0:
        raise KdbenchError(f"{source}: the split is empty")
    raw = ds[task.label_column]
    labels = _label_ids(task, raw)
    bad = [i + 1 for i, label in enumerate(labels) if not _valid_label(task, label)]
    if bad:
        if task.is_regression:
            allowed = "finite numbers"
        elif any(isinstance(v, str) for v in raw):
            allowed = f"{', '.join(task.label_names)} (or their ids 0..{task.num_labels - 1})"
        else:
            allowed = f"0..{task.num_labels - 1}"
        raise KdbenchError(
            f"{source}: bad label {raw[bad[0] - 1]!r} in row(s) {_rows(bad)}; {task.name} labels are {allowed}"
        )
    for f in task.text_fields:
        empty = [i + 1 for i, text in enumerate(ds[f]) if not isinstance(text, str)]
        if empty:
            raise KdbenchError(f"{source}: row(s) {_rows(empty)} have no text in column {f!r}")
    kept = ds.select_columns(list(task.text_fields))
    return kept.add_column("label", [float(v) if task.is_regression else int(v) for v in labels])


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
        if task.files:
            ds, source = _file_split(task, split)
        elif data_dir is None:
            ds, source = _hub_split(task, split), f"{task.hub}/{task.hub_config or ''}:{split}"
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
        return load_dataset(task.hub, task.hub_config, split=split)
    except Exception as exc:  # offline, or the hub refused: say so in one line
        raise KdbenchError(
            f"cannot load {task.name} from the Hugging Face hub ({task.hub}, {type(exc).__name__}); "
            "pass --data-dir with a local copy"
        ) from None


def tokenize(dataset_dict, task: Task, tokenizer, max_seq_len: int, truncated: dict | None = None):
    """Tokenise every split without padding (batches are padded dynamically); keep a `length` column for
    length-grouped batching. Longer inputs are cut to `max_seq_len` tokens; `truncated`, when given, receives per
    split how many rows were cut (what a task with long texts needs stated)."""

    def encode(batch):
        texts = [batch[f] for f in task.text_fields]
        enc = tokenizer(*texts, truncation=True, max_length=max_seq_len)
        enc["length"] = [len(ids) for ids in enc["input_ids"]]
        enc["labels"] = batch["label"]
        if enc.encodings is not None:  # a fast tokenizer keeps what truncation cut off
            enc["truncated"] = [bool(e.overflowing) for e in enc.encodings]
        else:
            whole = tokenizer(*texts, truncation=False)["input_ids"]
            enc["truncated"] = [len(ids) > max_seq_len for ids in whole]
        return enc

    columns = [*task.text_fields, "label"]
    out = dataset_dict.map(encode, batched=True, remove_columns=columns, desc="tokenizing")
    if truncated is not None:
        truncated.update({split: int(sum(ds["truncated"])) for split, ds in out.items()})
    return out.remove_columns("truncated")
