"""Timing, and what is derived from timings: the clock and the interleaved measuring loop (clock), statistics and
speed-up intervals from raw samples (stats), the profile scenario (profile) and its schema-versioned result
(result), where the time goes by operator group (breakdown), kernel traces (kerneltrace) and a GPU's ceilings
(ceilings). Imports core, zoo, results and engines.
"""
