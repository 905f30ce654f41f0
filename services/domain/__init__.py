"""Pure domain logic: decisions and projections as plain Python with no I/O.

Everything here is a function of its inputs, so the auditor's replay reaches the same answers.
"""
