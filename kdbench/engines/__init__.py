"""Running a model on an inference engine: the Backend/Session protocol (base), one module per engine (pytorch,
onnxruntime), the engines by name (registry), the one ONNX export path with its optimised and quantised variants
and their parity (onnx), and a model's answers over a dataset (inference). Imports core, zoo, tasks and results.
"""
