"""The run folder, the one owner of what `distill`, `export` and `evaluate` write into it: its layout, states, typed
readers, the writer's lock and stale-temporary cleanup (run). Imports core only.
"""
