"""The ground floor: what every other folder stands on.

errors (the one user-error type and its kinds), names ("did you mean" lookups and choices), io (atomic files, strict
JSON, writability checks, kdbench's cache folder), env (the machine, its devices and libraries: the block every result
embeds) and ortbuild (which ONNX Runtime build is installed and whether it offers a device's provider).
Imports nothing of kdbench outside core.
"""
