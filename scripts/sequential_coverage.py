"""How valid is the profile's sequential stopping rule? (issue 26)

    python3 scripts/sequential_coverage.py [--trials 1000]

Simulates comparisons measured as a default profile measures them (kdbench.measure.simulation: a shared machine with
drift, the minimum, then looks until decided or out of budget) at several true speed-ups and two levels of drift, and
prints for each: how often the interval where measuring stopped covered the truth, how often the student was called
faster, and the mean paired rounds at the stop - with the error spent over the looks (kdbench's rule) and, for
contrast, with a plain 95 % interval at every look.
"""

from __future__ import annotations

import argparse
from unittest import mock

from kdbench.measure import stats
from kdbench.measure.simulation import simulate

MACHINES = {
    "default drift": {},
    "twice the drift": {"walk_sd": 0.04, "burst_sd": 0.10, "call_sd": 0.06},
}

RULES = {
    "spent over looks": stats.look_alpha,  # kdbench's rule
    "95 % at every look": lambda look: 1 - stats.CONFIDENCE,  # what optional stopping must not do
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000, help="simulated profiles per row")
    args = parser.parse_args()
    print("| machine | true speed-up | rule | coverage at stop | called faster | rounds at stop |")
    print("|---|---|---|---|---|---|")
    for machine, settings in MACHINES.items():
        for truth in (1.0, 1.03, 1.05, 1.10):
            for rule, alpha in RULES.items():
                with mock.patch.object(stats, "look_alpha", alpha):
                    f = simulate(truth, args.trials, **settings)
                print(
                    f"| {machine} | {truth:.2f}x | {rule} | {f['coverage']:.1%} | {f['faster']:.1%} | "
                    f"{f['rounds']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
