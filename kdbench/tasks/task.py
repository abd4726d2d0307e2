"""A task: its text fields, label space, metrics and evaluation splits; the nine GLUE tasks by name."""

from __future__ import annotations

from dataclasses import dataclass

from kdbench.core.names import lookup


@dataclass(frozen=True)
class Task:
    """One GLUE task: its text fields, label space, metrics and splits."""

    name: str  # hub config name, e.g. "rte"
    text_fields: tuple[str, ...]  # one or two text columns
    num_labels: int  # 1 means regression (STS-B)
    metrics: tuple[str, ...]  # official metrics, the first one picks the best checkpoint
    eval_splits: tuple[str, ...] = ("validation",)  # MNLI: matched and mismatched
    tsv_dir: str = ""  # folder name in glue_data/
    label_names: tuple[str, ...] = ()  # TSV label strings in hub id order (empty: labels are numbers)

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1

    @property
    def main_metric(self) -> str:
        return self.metrics[0]


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("cola", ("sentence",), 2, ("matthews_correlation",), tsv_dir="CoLA"),
        Task("sst2", ("sentence",), 2, ("accuracy",), tsv_dir="SST-2"),
        Task("mrpc", ("sentence1", "sentence2"), 2, ("f1", "accuracy"), tsv_dir="MRPC"),
        Task("stsb", ("sentence1", "sentence2"), 1, ("pearson", "spearman"), tsv_dir="STS-B"),
        Task("qqp", ("question1", "question2"), 2, ("f1", "accuracy"), tsv_dir="QQP"),
        Task(
            "mnli",
            ("premise", "hypothesis"),
            3,
            ("accuracy",),
            ("validation_matched", "validation_mismatched"),
            tsv_dir="MNLI",
            label_names=("entailment", "neutral", "contradiction"),
        ),
        Task(
            "qnli",
            ("question", "sentence"),
            2,
            ("accuracy",),
            tsv_dir="QNLI",
            label_names=("entailment", "not_entailment"),
        ),
        Task(
            "rte",
            ("sentence1", "sentence2"),
            2,
            ("accuracy",),
            tsv_dir="RTE",
            label_names=("entailment", "not_entailment"),
        ),
        Task("wnli", ("sentence1", "sentence2"), 2, ("accuracy",), tsv_dir="WNLI"),
    )
}


ALIASES = {"sst-2": "sst2", "sts-b": "stsb", "mnli-m": "mnli"}


def get_task(name: str) -> Task:
    """The task called `name` (case-insensitive; 'SST-2' works), with a 'did you mean' on typos."""
    key = ALIASES.get(name.lower(), name.lower())
    return lookup("task", key, TASKS)
