"""`make bench`: load figures for SPEC section 11, measured on the real stack.

Each scenario starts nothing itself: `bench.stack` brings up the database, `python -m server
serve` and Envoy once; a scenario is one function in `bench.scenarios` that returns the cases
to load (tool, target, and the check that the answers were real successes). The runner
interleaves the cases' runs, reads CPU of the server and Envoy from /proc around each run and
reports medians, because on 2 shared cores single runs and absolute peaks mislead.
"""
