"""Where a forward pass spends its time: Q/K/V projections, attention products, output projection, feed-forward and
the rest, measured with module hooks and set beside the analytic FLOPs of each group (`kdbench profile --breakdown`).

This is what explains the head verdict: with the hidden size fixed, fewer (wider) heads leave the projections and the
feed-forward exactly as they were, and only the attention products change shape; pruned heads shrink the projections.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kdbench.core.errors import KdbenchError
from kdbench.zoo.students import StudentShape

GROUPS = ("Q/K/V projections", "attention products", "output projection", "feed-forward", "rest")


def group_flops(shape: StudentShape, seq_len: int) -> dict[str, int]:
    """Analytic forward FLOPs per group for one sequence (2 per multiply-add, as kdbench.zoo.flops counts them)."""
    from kdbench.zoo.flops import head_flops

    h, a, f, n, layers = shape.hidden, shape.attn_dim, shape.ffn, seq_len, shape.layers
    return {
        "Q/K/V projections": layers * 2 * n * h * a * 3,
        "attention products": layers * 2 * n * n * a * 2,
        "output projection": layers * 2 * n * a * h,
        "feed-forward": layers * 2 * n * h * f * 2,
        "rest": head_flops(shape),
    }


def _modules(model) -> dict[str, list]:
    """The modules of each group, for the BERT/RoBERTa/ELECTRA layout (self-attention with query/key/value, an
    attention output dense, intermediate and output dense layers)."""
    out: dict[str, list] = {g: [] for g in GROUPS if g != "rest"}
    out["self-attention"] = []
    for name, module in model.named_modules():
        parts = name.split(".")
        if len(parts) < 2:
            continue
        if parts[-1] in ("query", "key", "value") and parts[-2] == "self":
            out["Q/K/V projections"].append(module)
        elif parts[-1] == "self" and parts[-2] == "attention":
            out["self-attention"].append(module)
        elif parts[-1] == "dense" and parts[-2] == "output" and len(parts) >= 3 and parts[-3] == "attention":
            out["output projection"].append(module)
        elif parts[-1] == "intermediate" or (parts[-1] == "output" and parts[-2].isdigit()):
            out["feed-forward"].append(module)
    if not out["Q/K/V projections"] or not out["self-attention"]:
        raise KdbenchError(
            f"--breakdown knows the BERT/RoBERTa/ELECTRA module layout; {type(model).__name__} has another"
        )
    return out


def breakdown(model, call: Callable[[], object], synchronize: Callable[[], None], repeats: int = 10) -> dict:
    """Seconds per group, averaged over `repeats` calls of `call` (a forward pass of `model`), after one warm call.

    Hooks time every module of a group (synchronising first on CUDA); the attention products are the self-attention
    module's time minus its Q/K/V projections; the rest is the whole call minus the groups (embeddings, layer norms,
    residual additions, the classification head)."""
    groups = _modules(model)
    spent = {g: 0.0 for g in (*GROUPS, "self-attention")}
    started: dict[int, float] = {}
    handles = []
    for group, modules in groups.items():
        for m in modules:

            def pre(module, args, group=group):
                synchronize()
                started[id(module)] = time.perf_counter()

            def post(module, args, output, group=group):
                synchronize()
                spent[group] += time.perf_counter() - started.pop(id(module))

            handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        call()  # warm: allocator and caches settle with the hooks in place
        spent.update({g: 0.0 for g in spent})
        total = 0.0
        for _ in range(repeats):
            synchronize()
            t0 = time.perf_counter()
            call()
            synchronize()
            total += time.perf_counter() - t0
    finally:
        for h in handles:
            h.remove()
    out = {
        "Q/K/V projections": spent["Q/K/V projections"],
        "attention products": spent["self-attention"] - spent["Q/K/V projections"],
        "output projection": spent["output projection"],
        "feed-forward": spent["feed-forward"],
    }
    out["rest"] = max(0.0, total - sum(out.values()))
    return {g: s / repeats for g, s in out.items()} | {"total": total / repeats}
