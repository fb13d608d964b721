"""Atelier's training layer: job spec in, trained model, events and an MLflow run out.

Never imports Django: the web app and the workers reach it only through a spec file and a subprocess
(`python -m workers.training run SPEC.json`). Heavy libraries are imported inside the functions that
need them, so `python -m workers.training --help` answers at once.
"""
