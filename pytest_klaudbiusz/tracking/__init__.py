"""MLflow at the edge: logging a report as a run, reading past runs, the outbox of runs not yet
sent, the public API.
"""
