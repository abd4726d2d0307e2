import pandas as pd
import pytest

from kdbench.core.errors import KdbenchError
from kdbench.tasks.loading import load_task, tokenize
from kdbench.tasks.task import get_task, load_tasks


def test_all_nine_tasks_are_defined_with_their_metrics():
    assert set(load_tasks()) == {"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}
    assert get_task("SST-2").name == "sst2" and get_task("stsb").is_regression
    assert get_task("mnli").eval_splits == ("validation_matched", "validation_mismatched")
    assert get_task("mrpc").metrics == ("f1", "accuracy") and get_task("cola").main_metric == "matthews_correlation"
    with pytest.raises(KdbenchError, match="unknown task 'rtee' \\(did you mean 'rte'\\?\\)"):
        get_task("rtee")


def test_parquet_layout_and_sample_limits(glue_parquet):
    data = load_task(get_task("rte"), glue_parquet, max_train_samples=10, max_eval_samples=5)
    assert len(data["train"]) == 10 and len(data["validation"]) == 5
    assert data["train"].column_names == ["sentence1", "sentence2", "label"]
    stsb = load_task(get_task("stsb"), glue_parquet)
    assert isinstance(stsb["train"]["label"][1], float)


def test_tsv_layout_maps_string_labels_to_hub_ids(glue_tsv):
    data = load_task(get_task("rte"), glue_tsv)
    assert data["train"]["label"][:4] == [0, 1, 0, 1]  # entailment -> 0, not_entailment -> 1, as on the hub
    cola = load_task(get_task("cola"), glue_tsv)
    assert len(cola["validation"]) == 12 and cola["train"]["label"][:2] == [0, 1]


def test_real_shared_glue_loads_when_present():
    from pathlib import Path

    shared = Path(__file__).resolve().parents[3] / "shared" / "glue"
    if not shared.is_dir():
        pytest.skip("../shared/glue is not beside this checkout")
    data = load_task(get_task("rte"), shared)
    assert len(data["train"]) == 2490 and len(data["validation"]) == 277


def test_tokenize_pads_nothing_and_keeps_lengths(glue_parquet, bert_teacher):
    """Each row keeps exactly its own tokens (batches are padded later, per batch): rows of different lengths stay
    different, and the length column is what the tokenizer gives that pair alone; a cut at max_seq_len truncates."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(bert_teacher)
    task = get_task("rte")
    raw = load_task(task, glue_parquet)
    data = tokenize(raw, task, tok, max_seq_len=64)  # longer than any tiny pair: nothing is cut
    rows, texts = data["train"], raw["train"]
    alone = [len(tok(a, b)["input_ids"]) for a, b in zip(texts["sentence1"], texts["sentence2"], strict=True)]
    assert rows["length"] == alone and [len(ids) for ids in rows["input_ids"]] == alone
    assert len(set(alone)) > 1 and max(alone) < 64  # padding to the longest row or to max_seq_len would show here
    assert all(set(mask) == {1} for mask in rows["attention_mask"]) and rows["labels"] == texts["label"]
    cut = tokenize(raw, task, tok, max_seq_len=8)["train"]
    assert max(cut["length"]) == 8
    assert all(len(ids) == n for ids, n in zip(cut["input_ids"], cut["length"], strict=True))


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda root: (root / "rte" / "validation.parquet").unlink(), "has no validation split for rte"),
        (
            lambda root: pd.DataFrame({"sentence1": ["a"], "sentence2": ["b"], "label": [5]}).to_parquet(
                root / "rte" / "train.parquet"
            ),
            "bad label 5 in row(s) 1; rte labels are 0..1",
        ),
        (
            lambda root: pd.DataFrame(
                {"sentence1": ["a", "b", "c"], "sentence2": ["b", "c", "d"], "label": [1.0, float("nan"), 2.5]}
            ).to_parquet(root / "stsb" / "train.parquet"),
            "bad label None in row(s) 2; stsb labels are finite numbers",
        ),
        (
            lambda root: pd.DataFrame(
                {"sentence1": ["a", "b", "c"], "sentence2": ["b", "c", "d"], "label": [0, 1, 0.5]}
            ).to_parquet(root / "rte" / "train.parquet"),
            "bad label 0.5 in row(s) 3",
        ),
        (
            lambda root: pd.DataFrame(
                {
                    "sentence1": pd.Series([], dtype=str),
                    "sentence2": pd.Series([], dtype=str),
                    "label": pd.Series([], dtype=int),
                }
            ).to_parquet(root / "rte" / "train.parquet"),
            "the split is empty",
        ),
        (
            lambda root: pd.DataFrame({"text": ["a"], "label": [0]}).to_parquet(root / "rte" / "train.parquet"),
            "missing column(s) sentence1, sentence2",
        ),
        (lambda root: (root / "rte" / "train.parquet").write_bytes(b"not parquet"), "not a readable parquet file"),
    ],
)
def test_bad_local_data(glue_parquet, mutate, message):
    mutate(glue_parquet)
    with pytest.raises(KdbenchError) as err:
        for task in ("rte", "stsb"):  # each case breaks one of them
            load_task(get_task(task), glue_parquet)
    assert message in str(err.value)


def test_malformed_tsv_rows_are_named(glue_tsv):
    (glue_tsv / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tonly one column\n")
    with pytest.raises(KdbenchError, match="train.tsv: row 2 has 2 columns"):
        load_task(get_task("rte"), glue_tsv)
    (glue_tsv / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(
        KdbenchError, match="bad label 'maybe' in row\\(s\\) 1; rte labels are entailment, not_entailment"
    ):
        load_task(get_task("rte"), glue_tsv)
