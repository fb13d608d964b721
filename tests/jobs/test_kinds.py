"""Each kind of job declares what it runs (apps.jobs.kinds); the runner runs whatever it declares."""

from __future__ import annotations

import pytest

from apps.jobs.kinds import kind_of
from apps.jobs.models import Job, Kind
from workers.training.__main__ import main


def test_each_kind_of_job_runs_a_command_of_the_training_cli_and_a_resilient_job_its_coordinator():
    commands = {kind: kind_of(Job(kind=kind, spec={})).command for kind in Kind.values}
    assert commands == {Kind.TRAINING: "run", Kind.EVALUATION: "evaluate", Kind.SYNTHESIS: "synthesize"}
    resilient = kind_of(Job(kind=Kind.TRAINING, spec={"resilience": {"min_replicas": 1, "max_replicas": 2}}))
    # The coordinator runs the job; a replica of this worker's own runs beside it.
    assert resilient.command == "coordinate" and resilient.companion is not None and resilient.verdict
    assert all(kind_of(Job(kind=kind, spec={})).companion is None for kind in Kind.values)
    for command in {*commands.values(), resilient.command}:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        assert done.value.code == 0, command


def test_only_a_training_job_takes_its_held_out_verdict_and_each_kind_its_own_after_success_hook():
    training, evaluation, synthesis = (kind_of(Job(kind=kind, spec={})) for kind in Kind.values)
    assert (training.verdict, evaluation.verdict, synthesis.verdict) == (True, False, False)
    # A training job is evaluated automatically, a generation's rows are imported; an evaluation has nothing.
    assert training.after_success is not None and synthesis.after_success is not None
    assert evaluation.after_success is None
