"""Synthetic data: a teacher model writes training rows in the chosen technique's format from a task
description, a few seed examples and optional documents (topic tree, grounded examples, validation,
near-duplicate removal). No Django; the pipeline runs as `python -m workers.training synthesize SPEC`."""
