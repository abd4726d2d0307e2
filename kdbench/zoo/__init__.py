"""The teacher and its students as shapes: the teacher's config and limits (teacher), student files resolved against
it (students), models built from a shape with transformers' Auto classes, heads pruned (modeling), analytic FLOPs
(flops). Imports core only.
"""
