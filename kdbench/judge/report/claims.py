"""The paper's four claims, each with the verdict the rows support, judged again on every bootstrap resample."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kdbench.judge.report.inputs import Inputs, teacher_shapes
from kdbench.judge.uncertainty import verdict_from_support
from kdbench.judge.verdict import head_verdicts
from kdbench.measure.comparisons import FASTER, MEANINGFUL_SPEEDUP, TOO_FEW, excludes_speedup

KINDS = ("layers", "heads", "hidden", "combined", "pruned")


def kind_of(s: dict, t: dict) -> str | None:
    """What a student compresses relative to its teacher: layers, heads, hidden, combined or pruned."""
    if s.get("pruned"):
        return "pruned"
    fewer = [k for k in ("layers", "heads", "hidden") if s[k] < t[k]]
    if len(fewer) == 1:
        return fewer[0]
    return "combined" if fewer else None


# ------------------------------------------------------------------------------------------------------ claims
@dataclass(frozen=True)
class Claim:
    """One of the paper's claims with the verdict the data supports."""

    claim: str
    verdict: str  # "holds", "does not hold", "inconclusive" (the data allow either), "not enough data"
    evidence: str

    def line(self) -> str:
        return f"{self.claim}: {self.verdict.upper()} - {self.evidence}"


def _reference_speed(row: dict) -> float | None:
    """The student's speed-up at its first measured grid point on PyTorch (the reference configuration)."""
    for key, cell in sorted(row["speed"].items()):
        if " torch " in f" {key} " and cell["speedup"]:
            return cell["speedup"]["value"]
    return None


def _by_kind(rows: list[dict], teacher_shapes: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        t = teacher_shapes.get(r["task"])
        k = kind_of(r["shape"], t) if t else None
        if k:
            out.setdefault(k, []).append(r)
    return out


def judged_claims(rows: list[dict], inputs: Inputs) -> list[Claim]:
    """The four claims with verdicts that say how sure they are: each is judged again on every bootstrap resample of
    the evaluation examples (seeds resampled too); HOLDS or DOES NOT HOLD needs 95 % of the resamples, anything
    between is INCONCLUSIVE. Runs without per-example predictions leave a claim INCONCLUSIVE, with the point
    estimates' verdict shown."""
    lines = [ln for pr in inputs.profiles for ln in head_verdicts(pr)]
    base = claims(rows, inputs, lines)
    decided = [i for i, c in enumerate(base) if c.verdict in ("holds", "does not hold")]
    if not decided:
        return base
    missing = [r for r in rows if r.get("_share_samples") is None]
    if missing:
        for i in decided:
            c = base[i]
            base[i] = Claim(
                c.claim,
                "inconclusive",
                f"point estimates say {c.verdict.upper()} ({c.evidence}); {len(missing)} of {len(rows)} runs have no "
                "per-example predictions, so how sure that is cannot be said",
            )
        return base
    resamples = len(rows[0]["_share_samples"])
    votes = [
        claims([{**r, "share": float(r["_share_samples"][k])} for r in rows], inputs, lines) for k in range(resamples)
    ]
    for i in decided:
        c = base[i]
        support = float(np.mean([v[i].verdict == "holds" for v in votes]))
        against = float(np.mean([v[i].verdict == "does not hold" for v in votes]))
        verdict = verdict_from_support(support) if against < 0.95 else "does not hold"
        base[i] = Claim(
            c.claim,
            verdict,
            f"{c.evidence}; holds in {support:.0%} and fails in {against:.0%} of {resamples} bootstrap resamples of "
            "the evaluation examples",
        )
    return base


def claims(rows: list[dict], inputs: Inputs, lines=None) -> list[Claim]:
    """The four claims of the paper, each with a verdict computed from the rows' point estimates ("holds", "does not
    hold", "inconclusive" where the speed intervals decide nothing, or "not enough data"). `lines`: the head
    verdicts of the profiles (computed here when not given)."""
    kinds = _by_kind(rows, teacher_shapes(inputs))
    lines = [ln for pr in inputs.profiles for ln in head_verdicts(pr)] if lines is None else lines
    return [_layer_claim(kinds), _head_claim(kinds, lines), _task_claim(rows), _hidden_claim(kinds)]


def _layer_claim(kinds: dict[str, list[dict]]) -> Claim:
    """1. Layer reduction loses the least accuracy per unit of speed gained."""
    cost = {}
    for k, rs in kinds.items():
        vals = [(1 - r["share"]) / (sp - 1) for r in rs if (sp := _reference_speed(r)) and sp > MEANINGFUL_SPEEDUP]
        if vals:
            cost[k] = float(np.mean(vals))
    text = "layer reduction loses the least accuracy per unit of speed gained"
    if "layers" not in cost or len(cost) < 2:
        missing = "layer-reduced students" if "layers" not in cost else "another kind of student"
        return Claim(
            text,
            "not enough data",
            f"needs accuracy and a measured speed-up (> {MEANINGFUL_SPEEDUP}x) "
            f"for {missing}; have: {', '.join(sorted(cost)) or 'none'}",
        )
    best = min(cost, key=cost.get)
    ev = ", ".join(f"{k} {v:.3f}" for k, v in sorted(cost.items(), key=lambda kv: kv[1]))
    return Claim(
        text,
        "holds" if best == "layers" else "does not hold",
        f"share of the teacher's score lost per unit of speed-up gained: {ev}",
    )


def _head_claim(kinds: dict[str, list[dict]], lines) -> Claim:
    """2. Fewer attention heads cost accuracy and bring no speed-up."""
    text = "fewer attention heads cost accuracy and bring no speed-up"
    heads = kinds.get("heads", [])
    if not heads or not lines:
        return Claim(
            text,
            "not enough data",
            "needs distilled head-reduced students (4AH, 8AH) with accuracy and "
            "a profile with the teacher and head-reduced students",
        )
    share = float(np.mean([r["share"] for r in heads]))
    others = [r["share"] for k, rs in kinds.items() if k != "heads" for r in rs]
    costs = share < 1 and (not others or share <= float(np.mean(others)))
    faster = [ln for ln in lines if ln.outcome == FASTER]
    ruled_out = sum(excludes_speedup(ln.speedup) for ln in lines)
    pruned = [f"{ln.pruned} {ln.pruned_speedup}" for ln in lines if ln.pruned_speedup]
    kept = f"head students keep {share:.1%} of the teacher's score" + (
        f" (other students {np.mean(others):.1%})" if others else ""
    )
    few = sum(ln.outcome == TOO_FEW for ln in lines)
    speed = (
        f"{len(faster)} of {len(lines)} speed measurements faster, {ruled_out} rule out a speed-up above "
        f"{MEANINGFUL_SPEEDUP:.2f}x"
        + (f", {few} lack the calls or blocks of time a verdict needs" if few else "")
        + (f"; pruned heads would give {pruned[0]}" if pruned else "")
    )
    if not costs or faster:
        verdict = "does not hold"
    elif ruled_out == len(lines):
        verdict = "holds"
    else:
        verdict = "inconclusive"  # no speed-up shown, but the intervals do not rule one out either
    return Claim(text, verdict, f"{kept}; {speed}")


def _task_claim(rows: list[dict]) -> Claim:
    """3. Tasks differ in sensitivity (the paper's resistant and sensitive tasks)."""
    text = "tasks differ in sensitivity (paper: SST-2 and QQP resistant, RTE and CoLA sensitive)"
    by_task: dict[str, list[float]] = {}
    for r in rows:
        by_task.setdefault(r["task"], []).append(r["share"])
    if len(by_task) < 2:
        return Claim(
            text, "not enough data", f"needs students on at least two tasks; have {', '.join(by_task) or 'none'}"
        )
    rank = sorted(by_task, key=lambda t: -float(np.mean(by_task[t])))
    ev = " > ".join(f"{t} {np.mean(by_task[t]):.1%}" for t in rank)
    resistant = [t for t in ("sst2", "qqp") if t in rank]
    sensitive = [t for t in ("rte", "cola") if t in rank]
    if not resistant or not sensitive:
        return Claim(
            text,
            "not enough data",
            f"ranked by share kept: {ev}; the paper's comparison needs SST-2 or QQP and RTE or CoLA",
        )
    holds = max(rank.index(t) for t in resistant) < min(rank.index(t) for t in sensitive)
    return Claim(text, "holds" if holds else "does not hold", f"ranked by share kept: {ev}")


def _hidden_claim(kinds: dict[str, list[dict]]) -> Claim:
    """4. A smaller hidden size costs a moderate amount (between what layer and head reduction cost)."""
    text = "smaller hidden size costs a moderate amount"
    hidden, layers_, heads_ = (kinds.get(k, []) for k in ("hidden", "layers", "heads"))
    if not hidden or not (layers_ or heads_):
        return Claim(
            text,
            "not enough data",
            "needs distilled smaller-hidden students (384D, 516D) and layer- or head-reduced students to compare with",
        )
    h = float(np.mean([r["share"] for r in hidden]))
    bounds = [float(np.mean([r["share"] for r in g])) for g in (layers_, heads_) if g]
    moderate = min(bounds) <= h <= max(bounds) if len(bounds) == 2 else h < 1
    others = "; ".join(
        f"{k} students {np.mean([r['share'] for r in g]):.1%}" for k, g in (("layer", layers_), ("head", heads_)) if g
    )
    return Claim(
        text,
        "holds" if moderate else "does not hold",
        f"smaller-hidden students keep {h:.1%} of the teacher's score; {others}",
    )
