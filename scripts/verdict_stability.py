"""How often does a verdict flip between repeats of the same command on this machine? (issue 16)

    python3 scripts/verdict_stability.py OUT_DIR [--quick-runs 10] [--grid-runs 5]

Runs `kdbench profile --quick` and a small head-verdict grid (teacher, 4AH, 8AH and their pruned twins, torch, batch 1,
length 128) several times each, keeps every result file, and prints each run's head claim and per-line outcomes and
how many claims flipped between HOLDS and DOES NOT HOLD (INCONCLUSIVE is allowed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections import Counter
from pathlib import Path

GRID = ["--students", "4AH,8AH,4AH_pruned,8AH_pruned", "--backends", "torch", "--batch-sizes", "1", "--seq-lens", "128"]


def run(out: Path, name: str, extra: list[str]) -> tuple[str, list[str]]:
    from kdbench.judge.verdict import head_claim, head_verdicts
    from kdbench.measure.result import ProfileResult

    path = out / f"{name}.json"
    subprocess.run(["kdbench", "profile", *extra, "--output", str(path)], check=True, capture_output=True, text=True)
    result = ProfileResult.from_json(path)
    lines = [] if result.smoke else head_verdicts(result)
    return head_claim(lines, result.smoke), [f"{ln.student} {ln.speedup} {ln.outcome}" for ln in lines]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--quick-runs", type=int, default=10)
    ap.add_argument("--grid-runs", type=int, default=5)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flips = 0
    for label, n, extra in (("quick", args.quick_runs, ["--quick"]), ("grid", args.grid_runs, GRID)):
        if n == 0:
            continue
        claims = []
        for i in range(n):
            claim, lines = run(args.out, f"{label}-{i}", extra)
            claims.append(claim.split(":")[0])
            print(f"{label} {i}: {claim[:160]}", flush=True)
            for ln in lines:
                print(f"    {ln}", flush=True)
        counts = Counter(claims)
        flipped = "HOLDS" in counts and "DOES NOT HOLD" in counts
        flips += flipped
        print(
            f"{label}: {dict(counts)}; flips between HOLDS and DOES NOT HOLD: {'yes' if flipped else 'none'}",
            flush=True,
        )
    return 1 if flips else 0


if __name__ == "__main__":
    sys.exit(main())
