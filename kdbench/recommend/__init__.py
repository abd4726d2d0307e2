"""`kdbench recommend`: which student to deploy, on which engine and precision, for a task, a machine and a latency
budget - measured, trained and judged, with how sure each part is.

space (the candidates: the student zoo and a generated space of shapes, as student files, and the rule that
shortlists the ones to train), search (the steps: the length the deployment will see, candidates timed on every engine
with random weights, the shortlist trained as a study, exported and scored), answer (the recommendation with its
intervals, the runner-up, the trade-offs, written as RECOMMENDATION.md, recommendation.json and a plot). Imports every
floor below it; only cli imports it.
"""
