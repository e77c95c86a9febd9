"""One app's evaluation: how it is run (manifest, template), its sandboxed stages, probes, logs and
per-app scores.
"""
