"""The card's own ceilings, measured once: dense bf16 matrix-product TFLOP/s and device-to-device copy GB/s.

Achieved TFLOP/s of a profile cell is only meaningful next to what this card reaches on the easiest possible work.
"""

from __future__ import annotations

from kdbench.core.env import check_device
from kdbench.measure.clock import clock_for, measure


def measure_ceilings(matmul_n: int = 8192, copy_mib: int = 1024, min_time_s: float = 1.0) -> dict:
    """Return {'bf16_matmul_tflops', 'd2d_copy_gbps', 'device'} measured on the current CUDA device."""
    import torch

    check_device("cuda")
    clock = clock_for("cuda")

    def best(call) -> float:  # a ceiling is the best the card did, not the typical
        return min(
            measure(
                call,
                torch.cuda.synchronize,
                clock,
                warmup_runs=5,
                min_runs=20,
                min_time_s=min_time_s,
                max_time_s=30.0,
                warmup_time_s=0.5,
            )
        )

    a = torch.randn(matmul_n, matmul_n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(matmul_n, matmul_n, device="cuda", dtype=torch.bfloat16)
    best_mm = best(lambda: a @ b)
    src = torch.empty(copy_mib * 2**20, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    best_cp = best(lambda: dst.copy_(src))
    return {
        "device": torch.cuda.get_device_name(0),
        "bf16_matmul_tflops": 2 * matmul_n**3 / best_mm / 1e12,
        "d2d_copy_gbps": 2 * src.numel() / best_cp / 1e9,  # read + write
        "matmul_n": matmul_n,
        "copy_mib": copy_mib,
    }
