"""The export path against the one it replaced (issue 22): optimum's exporter, ORTOptimizer and ORTQuantizer
(optimum-onnx 0.1, transformers < 4.58) against torch.onnx.export with ONNX Runtime's own optimiser and quantiser.

    python3 scripts/export_paths.py RUN_DIR [--variants fp32,O2,int8] [--seconds 60]

RUN_DIR is a finished `kdbench distill` run: its student and its fine-tuned teacher are exported both ways. Prints,
per model and variant: parity against PyTorch on the run's evaluation split (argmax agreement, largest |logit
difference|, against kdbench's goals), the number of fused attention nodes, and ONNX Runtime's p50 at batch 1 and
length 128 for both paths, timed interleaved in this one process, with the new/old speed ratio and its 95 % interval
(batch means). Needs optimum-onnx installed beside kdbench; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path


def old_path(model, dest: Path, variant: str, fp32_dir: Path | None) -> Path:
    """What kdbench did before: optimum's exporter (dynamic axes), ORTOptimizer (AutoOptimizationConfig levels),
    ORTQuantizer (AutoQuantizationConfig.avx2, dynamic, per tensor)."""
    if variant == "fp32":
        from optimum.exporters.onnx import onnx_export_from_model

        onnx_export_from_model(
            model.float().cpu(), output=dest, task="text-classification", opset=18, do_validation=False
        )
    elif variant == "int8":
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        quantizer = ORTQuantizer.from_pretrained(fp32_dir, file_name="model.onnx")
        quantizer.quantize(AutoQuantizationConfig.avx2(is_static=False, per_channel=False), save_dir=dest)
    else:
        from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

        optimizer = ORTOptimizer.from_pretrained(fp32_dir, file_names=["model.onnx"])
        optimizer.optimize(AutoOptimizationConfig.with_optimization_level(variant), save_dir=dest)
    onnx_file = sorted(dest.glob("*.onnx"))[0]
    return onnx_file if onnx_file.name == "model.onnx" else onnx_file.rename(dest / "model.onnx")


def new_path(model, dest: Path, variant: str, fp32_dir: Path | None) -> Path:
    from kdbench.engines.onnx import onnx_export, onnx_optimize, onnx_quantize

    if variant == "fp32":
        return onnx_export(model, dest, 18)
    return onnx_quantize(fp32_dir, dest) if variant == "int8" else onnx_optimize(fp32_dir, variant, dest)


def fused_attention(path: Path) -> int:
    import onnx

    return sum(n.op_type in ("Attention", "MultiHeadAttention") for n in onnx.load(str(path)).graph.node)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--variants", default="fp32,O2,int8")
    parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per model and path, at least")
    args = parser.parse_args()

    import numpy as np
    from transformers import AutoTokenizer

    from kdbench.deploy.export import eval_data
    from kdbench.engines.inference import ort_logits, torch_logits
    from kdbench.engines.onnx import FP32_GOAL, INT8_GOAL, parity
    from kdbench.engines.onnxruntime import ort_session
    from kdbench.measure.clock import CpuClock, Target, measure_interleaved, warm_up
    from kdbench.measure.profile import make_inputs
    from kdbench.measure.stats import speedup_interval
    from kdbench.results.run import Run
    from kdbench.zoo.modeling import load_trained

    run = Run(args.run_dir)
    info = run.finished_config()
    variants = args.variants.split(",")
    models = {"teacher": Path(info["teacher_dir"]), info["student"]: run.student_dir}
    work = Path(tempfile.mkdtemp(prefix="export-paths-"))
    files: dict[tuple[str, str, str], Path] = {}
    print("| model | variant | path | argmax agreement | largest abs logit diff | goal met | fused attention |")
    print("|---|---|---|---|---|---|---|")
    try:
        for name, folder in models.items():
            model = load_trained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
            task, tokenized = eval_data(info, tokenizer, None)
            split = tokenized[task.eval_splits[0]]
            reference = torch_logits(model, split, tokenizer)
            for label, export in (("old", old_path), ("new", new_path)):
                for variant in variants:
                    fp32_dir = files[(name, label, "fp32")].parent if variant != "fp32" else None
                    path = export(model, work / name / label / variant, variant, fp32_dir)
                    files[(name, label, variant)] = path
                    p = parity(
                        reference, ort_logits(path, split, tokenizer), INT8_GOAL if variant == "int8" else FP32_GOAL
                    )
                    print(
                        f"| {name} | {variant} | {label} | {p['argmax_agreement']:.2%} | {p['max_abs_diff']:.2e} | "
                        f"{'yes' if p['passed'] else 'NO'} | {fused_attention(path)} |"
                    )
        clock = CpuClock()
        arrays = make_inputs(int(load_trained(run.student_dir).config.vocab_size), 1, 128, 0)
        targets = []
        for key, path in files.items():
            session = ort_session(path, "cpu", threads=os.cpu_count() or 1)
            feed = session.prepare(arrays)
            warm_up(lambda s=session, x=feed: s.run(x), session.synchronize, clock, 5, 1.0)
            targets.append(
                Target("/".join(key), lambda s=session, x=feed: s.run(x), session.synchronize, min_blocks=20)
            )
        measure_interleaved(targets, clock, 100, args.seconds, args.seconds * 3)
        by = {t.name: t for t in targets}
        print("\n| model | variant | old p50 ms | new p50 ms | new/old speed [95% interval] | blocks |")
        print("|---|---|---|---|---|---|")
        for name in models:
            for variant in variants:
                old, new = by[f"{name}/old/{variant}"], by[f"{name}/new/{variant}"]
                ratio = speedup_interval(
                    old.samples, new.samples, baseline_blocks=old.blocks, candidate_blocks=new.blocks
                )
                print(
                    f"| {name} | {variant} | {np.median(old.samples) * 1e3:.2f} | {np.median(new.samples) * 1e3:.2f} | "
                    f"{ratio} | {min(len(set(old.blocks)), len(set(new.blocks)))} |"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
