"""Management core: the functions that own the subscriber data and enforce its rules.

Every write goes through these functions, which in one transaction change the rows,
append history and, when a RADIUS answer could change, a change-feed row.
"""
