"""A study as a file, run as independent cells: the file read and checked whole (spec), its cells and how one runs
(cells), the local and Ray executors (local_executor, ray_executor), running a study (runner) and its report
(report). Imports every floor below it, never cli.
"""
