"""A trained run made ready to serve: its ONNX variants exported and checked for parity (export), and its scores on
the engine and precision it will be deployed with, with per-example predictions (evaluate). Imports core, zoo, tasks,
results and engines.
"""
