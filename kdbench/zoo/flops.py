"""Analytic forward FLOPs of an encoder, counting 2 FLOPs per multiply-add.

Counted: the Q/K/V and output projections, the two attention matrix products (scores and weighted values), the FFN,
and the classification head on the first token. Left out as negligible (< 1 % at length 128): embeddings, layer
norms, softmax, activations, biases and residual additions.
"""

from __future__ import annotations

from kdbench.zoo.students import StudentShape

NUM_LABELS = 2


def layer_flops(shape: StudentShape, seq_len: int) -> int:
    """FLOPs of one transformer block for one sequence of `seq_len` tokens."""
    h, a, f, n = shape.hidden, shape.attn_dim, shape.ffn, seq_len
    projections = 2 * n * h * a * 3 + 2 * n * a * h  # Q, K, V in; output projection back to hidden
    attention = 2 * n * n * a * 2  # Q @ K^T and softmax(scores) @ V across all heads
    ffn = 2 * n * h * f * 2  # up and down projections
    return projections + attention + ffn


def head_flops(shape: StudentShape, num_labels: int = NUM_LABELS) -> int:
    """FLOPs of the classification head (a dense layer and the label projection on one token)."""
    return 2 * shape.hidden * shape.hidden + 2 * shape.hidden * num_labels


def sequence_flops(shape: StudentShape, seq_len: int) -> int:
    """Forward FLOPs for one sequence of `seq_len` tokens."""
    return shape.layers * layer_flops(shape, seq_len) + head_flops(shape)
