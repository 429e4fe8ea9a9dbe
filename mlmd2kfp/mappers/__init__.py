"""Pure functions from one MLMD run bundle to KFP target rows (no I/O, no clock, no logging).

See mapping.md; grows with issue #3.
"""
