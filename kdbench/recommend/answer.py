"""The answer of `kdbench recommend`: the best-scoring shortlisted student within the budget (and above --min-share),
scored on the engine and precision it would be deployed with, with a 95 % interval on its score (paired bootstrap
over the evaluation examples) and on its latency (batch means); the runner-up, and whether the two differ beyond
noise; what the fastest fitting candidate would lose and the largest would gain; the commands that reproduce and
deploy it. Written as recommendation.json (schema-versioned), RECOMMENDATION.md and recommendation.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kdbench.core import env
from kdbench.core.io import atomic_write_json, atomic_write_text, read_json
from kdbench.judge.uncertainty import RESAMPLES, interval, metric_samples
from kdbench.measure.stats import latency_interval
from kdbench.recommend.space import RULE
from kdbench.results.run import FINISHED, Run

SCHEMA = "kdbench.recommendation"
SCHEMA_VERSION = 1
EVAL_FILES = {
    "onnxruntime": "onnxruntime-fp32",
    "onnxruntime:int8": "onnxruntime-int8",
    "onnxruntime:O2": "onnxruntime-O2",
}


def _answers(run: Run, engine: str, predictions: dict) -> tuple[float, list] | None:
    """(score, per-example answers) of a run's student deployed on `engine`: PyTorch engines answer as the run's own
    evaluation did; an ONNX Runtime variant as its evaluation file recorded (None where it was not evaluated)."""
    if engine.startswith("torch"):
        return run.metrics()["score"], predictions["student"]
    doc = run.evaluation("onnxruntime", EVAL_FILES[engine].split("-", 1)[1])
    if not doc or "answers" not in doc or len(doc["answers"]) != len(predictions["labels"]):
        return None
    return doc["score"], doc["answers"]


def _interval(values: np.ndarray) -> dict:
    found = interval(values)
    return {"low": found[0], "high": found[1]} if found else {"low": None, "high": None}


def _scored(cfg, facts, name: str, why: str, idx, metric: str) -> dict | None:
    """A shortlisted candidate's deployment: on the fitting engine where it scores best (the faster on a tie), its
    score and share of the teacher's with intervals, and its latency there with its interval."""
    run = Run(facts["study"].output_dir / "runs" / facts["task"].name / f"{name}-s{cfg.seed}-f1.0")
    if run.state() != FINISHED:
        return None
    predictions = run.predictions()["splits"][facts["task"].eval_splits[0]]
    labels, teacher = predictions["labels"], predictions["teacher"]
    options = []
    for engine, latency in facts["fitting"][name].items():
        found = _answers(run, engine, predictions)
        if found is not None:
            options.append((-found[0], latency.high, engine, found, latency))
    if not options:
        return None
    _, _, engine, (score, answers), latency = min(options)
    scores = metric_samples(metric, labels, answers, idx)
    teacher_scores = metric_samples(metric, labels, teacher, idx)
    teacher_score = run.metrics()["teacher_score"]
    shares = np.divide(scores, teacher_scores, out=np.full(len(idx), np.nan), where=teacher_scores != 0)
    shape = facts["pool"][name].shape
    return {
        "name": name,
        "why": why,
        "zoo": facts["pool"][name].zoo,
        "shape": shape.to_dict(),
        "flops": facts["pool"][name].flops,
        "engine": engine,
        "score": {"value": score, **_interval(scores)},
        "share": {"value": score / teacher_score if teacher_score else None, **_interval(shares)},
        "latency_s": latency.to_dict(),
        "run": str(run.path),
        "_scores": scores,
    }


def _difference(a: dict, b: dict) -> dict:
    """The paired bootstrap of a's score minus b's: shown when its whole 95 % interval lies on one side of zero."""
    diff = a["_scores"] - b["_scores"]
    low, high = interval(diff) or (None, None)
    return {
        "value": a["score"]["value"] - b["score"]["value"],
        "low": low,
        "high": high,
        "shown": bool(low is not None and (low > 0 or high < 0)),
    }


def _deploy(cfg, best: dict) -> dict:
    """How to serve the recommendation: the file, the engine and precision, the threads."""
    run = Path(best["run"])
    threads = os.cpu_count() or 1
    if best["engine"].startswith("torch"):
        return {
            "engine": best["engine"],
            "precision": "fp32",
            "model": str(run / "student"),
            "threads": threads,
            "python": f"from kdbench.zoo.modeling import load_trained; model = load_trained({str(run / 'student')!r})",
        }
    variant = EVAL_FILES[best["engine"]].split("-", 1)[1]
    onnx = run / "onnx" / variant / "model.onnx"
    provider = "CUDAExecutionProvider" if cfg.device == "cuda" else "CPUExecutionProvider"
    return {
        "engine": "onnxruntime",
        "precision": variant,
        "model": str(onnx),
        "threads": threads,
        "python": (
            "import onnxruntime as ort; o = ort.SessionOptions(); "
            f"o.intra_op_num_threads = {threads}; "
            f"session = ort.InferenceSession({str(onnx)!r}, o, providers=[{provider!r}])"
        ),
    }


def answer(cfg, facts: dict) -> dict:
    """The recommendation from what the steps found; written into the folder and returned."""
    task = facts["task"]
    first = next(iter(facts["chosen"]))[0]
    run = Run(facts["study"].output_dir / "runs" / task.name / f"{first}-s{cfg.seed}-f1.0")
    metric = task.main_metric
    n = len(run.predictions()["splits"][task.eval_splits[0]]["labels"]) if run.state() == FINISHED else 0
    idx = np.random.default_rng(0).integers(0, max(n, 1), size=(RESAMPLES, max(n, 1)))
    scored = [s for name, why in facts["chosen"] if (s := _scored(cfg, facts, name, why, idx, metric))]
    eligible = [s for s in scored if cfg.min_share is None or (s["share"]["value"] or 0) >= cfg.min_share]
    ranked = sorted(eligible, key=lambda s: (-s["score"]["value"], s["latency_s"]["high"]))
    best = ranked[0] if ranked else None
    runner = ranked[1] if len(ranked) > 1 else None
    fastest = min(scored, key=lambda s: s["latency_s"]["high"]) if scored else None
    largest = max(scored, key=lambda s: s["flops"]) if scored else None
    teacher = {
        engine: latency_interval(cs[0].samples, cs[0].blocks, cfg.stat).to_dict()
        for engine, cs in facts["teacher_cells"].items()
    }
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "metric": metric,
        "settings": {
            **{k: v for k, v in cfg.identity().items()},
            "latency_budget_s": cfg.latency_budget_s,
            "stat": cfg.stat,
            "min_share": cfg.min_share,
            "candidates": cfg.candidates,
        },
        "seq_len": {"value": facts["seq_len"], "auto": cfg.seq_len is None, "texts": facts["texts"]},
        "teacher_latency_s": teacher,
        "timed": len(facts["pool"]),
        "fitting": len(facts["fitting"]),
        "rule": RULE,
        "shortlist": [{k: v for k, v in s.items() if not k.startswith("_")} for s in scored],
        "trained": len(scored),
        "recommendation": _public(best),
        "runner_up": _public(runner),
        "difference": _difference(best, runner) if best and runner else None,
        "fastest": _trade(best, fastest),
        "largest": _trade(best, largest),
        "deploy": _deploy(cfg, best) if best else None,
        "command": facts["command"],
        "wall_s": facts["wall_s"],
        "environment": env.collect(),
    }
    folder = cfg.output_dir
    atomic_write_json(folder / "recommendation.json", doc)
    atomic_write_text(folder / "RECOMMENDATION.md", markdown(doc))
    plot(doc, folder / "recommendation.png")
    return doc


def _public(s: dict | None) -> dict | None:
    return None if s is None else {k: v for k, v in s.items() if not k.startswith("_")}


def _trade(best: dict | None, other: dict | None) -> dict | None:
    """Another shortlisted candidate against the recommendation: its name, and its score and latency minus the
    recommendation's, with the score difference's paired interval."""
    if best is None or other is None:
        return None
    return {
        "name": other["name"],
        "score": _difference(other, best),
        "latency_s": other["latency_s"]["value"] - best["latency_s"]["value"],
    }


def _ms(d: dict) -> str:
    return f"{d['value'] * 1e3:.2f} ms [{d['low'] * 1e3:.2f}, {d['high'] * 1e3:.2f}]"


def _score(d: dict) -> str:
    ci = f" [{d['low']:.4f}, {d['high']:.4f}]" if d.get("low") is not None else ""
    return f"{d['value']:.4f}{ci}"


def summary(doc: dict) -> list[str]:
    """The answer in a few lines (the terminal's and RECOMMENDATION.md's opening)."""
    s = doc["settings"]
    lines = [
        f"Task {doc['task']}, teacher {Path(s['teacher']).name}, {s['device']}, batch {s['batch_size']}, length "
        f"{doc['seq_len']['value']}"
        + (f" (the 95th percentile of {doc['seq_len']['texts']} validation texts)" if doc["seq_len"]["auto"] else "")
        + f"; budget {s['latency_budget_s'] * 1e3:.3g} ms ({s['stat']})"
        + (f", at least {s['min_share']:.0%} of the teacher" if s["min_share"] else ""),
        f"{doc['timed']} candidates timed on {', '.join(s['engines'])}; {doc['fitting']} fit; {doc['trained']} "
        f"distilled; {doc['wall_s'] / 60:.1f} min in all.",
    ]
    best = doc["recommendation"]
    if best is None:
        lines.append("No shortlisted student meets the budget and the share asked for: nothing is recommended.")
        return lines
    lines.append(
        f"Recommended: {best['name']} on {best['engine']} - {doc['metric']} {_score(best['score'])}, "
        f"{best['share']['value']:.1%} of the teacher; latency {_ms(best['latency_s'])}."
    )
    if doc["runner_up"]:
        d, runner = doc["difference"], doc["runner_up"]
        lines.append(
            f"Runner-up: {runner['name']} on {runner['engine']} - {_score(runner['score'])}; "
            f"the recommendation scores {d['value']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] more: "
            + ("a difference beyond noise." if d["shown"] else "no difference shown (the interval holds zero).")
        )
    for key, verb in (("fastest", "the fastest fitting candidate"), ("largest", "the largest candidate")):
        t = doc[key]
        if t and t["name"] != best["name"]:
            lines.append(
                f"{verb.capitalize()}, {t['name']}: {t['score']['value']:+.4f} [{t['score']['low']:+.4f}, "
                f"{t['score']['high']:+.4f}] {doc['metric']}, {t['latency_s'] * 1e3:+.2f} ms."
            )
    return lines


def markdown(doc: dict) -> str:
    """RECOMMENDATION.md: the answer, the rule, the shortlist, and the commands to reproduce and deploy it."""
    lines = [
        "# kdbench recommendation",
        "",
        *(f"{ln}  " for ln in summary(doc)),
        "",
        "## Shortlist",
        "",
        doc["rule"],
        "",
    ]
    lines += [
        f"| student | why | layers x heads x width | engine | {doc['metric']} [95 %] | share | latency [95 %] |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in doc["shortlist"]:
        sh = s["shape"]
        lines.append(
            f"| {s['name']} | {s['why']} | {sh['layers']} x {sh['heads']} x {sh['head_dim']} (hidden {sh['hidden']}) "
            f"| {s['engine']} | {_score(s['score'])} | {s['share']['value']:.1%} | {_ms(s['latency_s'])} |"
        )
    teacher = ", ".join(f"{e} {_ms(v)}" for e, v in doc["teacher_latency_s"].items())
    lines += ["", f"The teacher (random weights, the same shape): {teacher}.", ""]
    if doc["deploy"]:
        d = doc["deploy"]
        lines += [
            "## Reproduce and deploy",
            "",
            "```bash",
            doc["command"] or "kdbench recommend ...",
            "```",
            "",
            f"Serve `{d['model']}` with {d['engine']} ({d['precision']}, {d['threads']} threads):",
            "",
            "```python",
            d["python"],
            "```",
            "",
        ]
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    """Score against latency of the shortlist at its deployed engines, intervals as bars, the budget as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kdbench.judge.report.plots import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in doc["shortlist"]:
        lat, score = s["latency_s"], s["score"]
        xerr = [[(lat["value"] - lat["low"]) * 1e3], [(lat["high"] - lat["value"]) * 1e3]]
        yerr = [[score["value"] - score["low"]], [score["high"] - score["value"]]] if score["low"] is not None else None
        best = doc["recommendation"] and s["name"] == doc["recommendation"]["name"]
        ax.errorbar(lat["value"] * 1e3, score["value"], xerr=xerr, yerr=yerr, fmt="*" if best else "o", capsize=3,
                    markersize=12 if best else 6, label=f"{s['name']} ({s['engine']})")  # fmt: skip
    ax.axvline(doc["settings"]["latency_budget_s"] * 1e3, color="red", linestyle="--", label="budget")
    ax.set_xlabel(f"{doc['settings']['stat']} latency (ms)")
    ax.set_ylabel(doc["metric"])
    ax.set_title(f"kdbench recommend: {doc['task']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def load(path: Path) -> dict:
    """A recommendation.json, checked to be one."""
    from kdbench.core.errors import KdbenchError

    doc = read_json(path)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise KdbenchError(f"{path} is not a kdbench recommendation")
    return doc
