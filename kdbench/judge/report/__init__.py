"""The report: inputs (profile results and run folders found and checked), rows (one per run, aggregated per task
and across tasks), claims (the paper's four, judged on every bootstrap resample), sections (heads, training size,
budget, deployment, Pareto), markdown and plots, and write (REPORT.md, report.json and the plots). Imports judge's
siblings and the floors below judge.
"""
