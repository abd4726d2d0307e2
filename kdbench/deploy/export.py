"""`kdbench export`: ONNX variants of a distilled student in its run folder (onnx/<variant>/model.onnx), each
checked for parity against PyTorch (onnx/parity.json); a variant whose parity fails is refused later unless forced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench.core import faults
from kdbench.core.errors import ConfigError
from kdbench.core.names import check_choice
from kdbench.engines.inference import ort_logits, torch_logits
from kdbench.engines.onnx import (
    FP32_GOAL,
    INT8_GOAL,
    MIN_OPSET,
    OPTIMIZE_LEVELS,
    QUANTIZE,
    max_opset,
    onnx_export,
    onnx_optimize,
    onnx_quantize,
    parity,
)
from kdbench.results.run import Run, file_sha256
from kdbench.tasks.loading import load_task, tokenize
from kdbench.tasks.task import recorded_task

PARITY_FILE = "parity.json"


@dataclass(frozen=True)
class ExportConfig:
    """What `kdbench export` writes."""

    run_dir: Path  # a run folder from `kdbench distill` (holds student/ and config.json)
    opset: int = 18  # ONNX opset
    optimize: str | None = None  # O1, O2 or O3: ONNX Runtime's transformer graph optimisations
    quantize: str | None = None  # int8: dynamic quantisation of the fp32 graph
    parity_samples: int = 256  # evaluation examples compared against PyTorch

    def __post_init__(self) -> None:
        if self.optimize is not None:
            check_choice("optimize", self.optimize, OPTIMIZE_LEVELS)
        if self.quantize is not None:
            check_choice("quantize", self.quantize, QUANTIZE)
        if (
            isinstance(self.parity_samples, bool)
            or not isinstance(self.parity_samples, int)
            or self.parity_samples <= 0
        ):
            raise ConfigError("parity_samples", f"must be a positive integer, got {self.parity_samples!r}")
        newest = max_opset()
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= newest:
            raise ConfigError(
                "opset", f"is {self.opset!r}; allowed: {MIN_OPSET} to {newest} (the installed onnx package's newest)"
            )


# ---------------------------------------------------------------------------------------------- the run folder
def run_info(run_dir: Path) -> dict:
    """The recipe of a finished run whose student is on disk; anything else is refused in one line."""
    return Run(run_dir).finished_config()


def eval_data(info: dict, tokenizer, max_samples: int | None):
    """The run's task evaluation split(s), tokenised as in training."""
    task = recorded_task(info)
    data_dir = Path(info["data_dir"]) if info.get("data_dir") else None
    data = load_task(task, data_dir, max_eval_samples=max_samples, splits=task.eval_splits)
    return task, tokenize(data, task, tokenizer, info["train"]["max_seq_len"])


def export_run(cfg: ExportConfig, log=print) -> dict:
    """Export the run's student (fp32 plus the asked-for variants), check each against PyTorch, write parity.json.

    Everything is checked before the run's onnx/ is touched; parity.json records each file's sha256, so a variant
    replaced or half-written later (a killed export) is refused by evaluate and profile instead of trusted.
    """
    from transformers import AutoTokenizer

    from kdbench.core import ortbuild as ort
    from kdbench.zoo.modeling import load_trained

    run = Run(cfg.run_dir)
    info = run_info(run.path)
    ort.check("cpu")  # parity is checked on ONNX Runtime's CPU provider
    run.parity()  # a broken parity.json fails here, before anything is written
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    task, tokenized = eval_data(info, tokenizer, cfg.parity_samples)  # the data first: cheap to check
    model = load_trained(run.student_dir)
    split = task.eval_splits[0]
    reference = torch_logits(model, tokenized[split], tokenizer)
    with run.writing():
        log(f"exporting {run.student_dir} (opset {cfg.opset})")
        # variants are made from fp32, which this export replaces: none of the old entries holds any more, and an
        # export killed half-way must leave no entry that vouches for a file it did not check
        report: dict = {}
        run.write_parity(report)
        variants = {"fp32": (onnx_export(model, run.variant_dir("fp32"), cfg.opset), FP32_GOAL)}
        faults.point("export")
        for name, goal in _extra_variants(cfg):
            if name in OPTIMIZE_LEVELS:
                path = onnx_optimize(run.variant_dir("fp32"), name, run.variant_dir(name))
            else:
                path = onnx_quantize(run.variant_dir("fp32"), run.variant_dir(name))
            variants[name] = (path, goal)
        for name, (path, goal) in variants.items():
            entry = {
                "path": str(path.relative_to(run.path)),
                "sha256": file_sha256(path),
                "opset": cfg.opset,
                "split": split,
                **parity(reference, ort_logits(path, tokenized[split], tokenizer), goal),
            }
            report[name] = entry
            state = "passed" if entry["passed"] else "FAILED"
            log(
                f"{name}: parity {state}: argmax agreement {entry['argmax_agreement']:.2%}, largest |logit diff| "
                f"{entry['max_abs_diff']:.2e} over {entry['examples']} examples"
            )
        run.write_parity(report)
    return report


def _extra_variants(cfg: ExportConfig) -> list[tuple[str, dict]]:
    """The variants asked for beyond fp32, with their parity goals."""
    out = []
    if cfg.optimize:
        out.append((cfg.optimize, FP32_GOAL))
    if cfg.quantize:
        out.append((cfg.quantize, INT8_GOAL))
    return out


def load_parity(onnx_dir: Path) -> dict:
    """The parity report of a run's ONNX folder ({} before the first export)."""
    return Run(Path(onnx_dir).parent).parity()


def variant_path(run_dir: Path, variant: str, force: bool = False) -> Path:
    """The ONNX file of an exported variant, checked against its parity entry (see Run.variant_file)."""
    return Run(run_dir).variant_file(variant, force)
