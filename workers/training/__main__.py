"""python -m workers.training: the training layer's command line.

build-tiny [--out DIR] [--force]        build the built-in tiny model (base and partly trained; the
                                        shipped judge and teacher copied beside them)
build-judge [--out DIR] [--compare-from DIR | --mark-from DIR]
                                        retrain the built-in judge from partial (maintainers; ~56 min;
                                        from a saved judge of its first one or two stages: ~16 or ~7 min)
build-teacher [--out DIR]               retrain the built-in teacher from partial (maintainers; ~15 min)
validate DATASET --technique T          check a dataset row by row against a technique's columns
try SPEC.json [--rows N]                the model answers N rows; the RLVR graders or RLAIF judge score them
evaluate SPEC.json                      compare models on held-out rows (report.json, samples.jsonl)
merge ADAPTER OUT                       merge a LoRA adapter into its base; save it (safetensors) to OUT
                                        (once: an OUT already merged is kept)
synthesize SPEC.json                    a teacher model writes a dataset (topics, rows.jsonl, provenance)
resilient SPEC.json [--replicas N]      checkpointless training: N torchft replicas on this machine
coordinate SPEC.json                    a resilient job's lighthouse and MLflow run (replicas elsewhere)
replica SPEC.json --index K --lighthouse URL   one replica of a resilient job
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from workers.training.techniques import REGISTRY  # light: the trainers import TRL when they run


def default_models_dir() -> Path:
    data = os.environ.get("ATELIER_DATA_DIR") or Path(__file__).resolve().parents[2] / "var"
    return Path(data) / "models"


def _build_tiny(args: argparse.Namespace) -> int:
    from workers.training import tiny

    out = Path(args.out or default_models_dir() / "atelier-tiny")
    if tiny.is_built(out) and not args.force:
        copied = tiny.install_shipped(out)
        print(
            f"Built-in tiny model: already built at {out}"
            + (f" ({', '.join(copied)} copied)" if copied else "")
        )
        return 0
    print(f"Building the built-in tiny model into {out} ...", flush=True)
    meta = tiny.build(out, force=args.force)
    print(
        f"Built-in tiny model: {meta['parameters']:,} parameters in {meta.get('seconds', 0)} s; "
        f"reverse exact match: base {meta.get('base_reverse_exact_match', 0):.2f}, "
        f"partly trained {meta['reverse_exact_match']:.2f} ({out})"
    )
    return 0


def _build_helper(args: argparse.Namespace) -> int:
    """build-judge and build-teacher: train the helper from the built `partial` into its shipped folder."""
    from workers.training import builtin_judge, builtin_teacher, tiny

    builder = {"judge": builtin_judge, "teacher": builtin_teacher}[args.variant]
    models = default_models_dir() / "atelier-tiny"
    tiny.build(models)
    out = Path(args.out) if args.out else tiny.SHIPPED[args.variant]
    print(f"Training the built-in {args.variant} from {models / 'partial'} into {out} ...", flush=True)
    more = {}
    if getattr(args, "compare_from", None):
        more["scoring"] = Path(args.compare_from)
    if getattr(args, "mark_from", None):
        more["comparing"] = Path(args.mark_from)
    meta = builder.build_and_save(
        models / "partial", out, log=lambda step, loss: print(step, round(loss, 4), flush=True), **more
    )
    measured = {k: meta[k] for k in ("agreement", "kept", "correct", "topic_trees_parsed") if k in meta}
    print(f"Built-in {args.variant}: {measured} on held-out requests ({out})")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from workers.training.data import DataError, records, validate

    try:
        check = validate(records(args.dataset), args.technique)
    except DataError as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    report = {
        "ok": check.ok,
        "rows": len(check.rows) + len(check.errors),
        "good_rows": len(check.rows),
        "columns": list(check.columns),
        "errors": [{"line": n, "message": m} for n, m in check.errors[:100]],
        "more_errors": max(0, len(check.errors) - 100),
    }
    print(json.dumps(report, indent=2))
    return 0 if check.ok else 1


def _run(args: argparse.Namespace) -> int:
    """Each spec in turn, in this one process (torch and the trainers imported once); the first failure's
    exit code, or 0."""
    from workers.training.train import run_and_report

    codes = [run_and_report(Path(spec)) for spec in args.spec]
    return next((code for code in codes if code), 0)


def _evaluate(args: argparse.Namespace) -> int:
    from workers.training.evaluation import evaluate_and_report

    return evaluate_and_report(Path(args.spec))


def _estimate(args: argparse.Namespace) -> int:
    from workers.training.data import DataError
    from workers.training.models import ModelError
    from workers.training.spec import JobSpec, SpecError
    from workers.training.train import estimate_spec

    try:
        result = estimate_spec(JobSpec.load(Path(args.spec)), gpu=args.gpu)
    except (SpecError, DataError, ModelError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps(result, indent=2))
    return 0


def _try(args: argparse.Namespace) -> int:
    from workers.training.data import DataError
    from workers.training.models import ModelError
    from workers.training.spec import JobSpec, SpecError
    from workers.training.trial import try_rewards

    try:
        rows = try_rewards(JobSpec.load(Path(args.spec)), rows=args.rows)
    except (SpecError, DataError, ModelError, ValueError) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({"rows": rows}, indent=2))
    return 0


def _synthesize(args: argparse.Namespace) -> int:
    from workers.training.synthetic.pipeline import synthesize_and_report

    return synthesize_and_report(Path(args.spec))


def _merge(args: argparse.Namespace) -> int:
    from workers.training.models import ModelError, merge_adapter

    try:
        # Once per folder: a chained job may have written this merge already (and trains on it).
        out = merge_adapter(args.adapter, args.out)
    except ModelError as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    print(json.dumps({"merged": str(out)}))
    return 0


def _resilient(args: argparse.Namespace) -> int:
    from workers.training.resilient.group import group_and_report, parse_schedule

    return group_and_report(Path(args.spec), replicas=args.replicas, kill_every=args.kill_every,
                            schedule=parse_schedule(args.schedule), spares=args.spares,
                            replenish=args.replenish)  # fmt: skip


def _coordinate(args: argparse.Namespace) -> int:
    from workers.training.resilient.group import coordinate_and_report

    return coordinate_and_report(Path(args.spec))


def _replica(args: argparse.Namespace) -> int:
    from workers.training.resilient.replica import replica_and_report

    return replica_and_report(Path(args.spec), args.index, args.lighthouse, standby=args.standby)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train as a spec file says (several: one after the other)")
    p.add_argument("spec", nargs="+")
    p.set_defaults(func=_run)
    p = sub.add_parser("evaluate", help="compare models on held-out rows: graders, text metrics, a judge")
    p.add_argument("spec")
    p.set_defaults(func=_evaluate)
    p = sub.add_parser("estimate", help="memory and time before launch")
    p.add_argument("spec")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--gpu", dest="gpu", action="store_true", default=None, help="estimate for a GPU")
    where.add_argument("--cpu", dest="gpu", action="store_false", help="estimate for this CPU")
    p.set_defaults(func=_estimate, gpu=None)  # neither flag: GPU for models of 50M parameters or more
    p = sub.add_parser("try", help="the model answers a few rows; RLVR graders or the RLAIF judge score them")
    p.add_argument("spec")
    p.add_argument("--rows", type=int, default=4)
    p.set_defaults(func=_try)
    p = sub.add_parser("build-tiny", help="build the built-in tiny model")
    p.add_argument("--out", help="folder (default: $ATELIER_DATA_DIR/models/atelier-tiny)")
    p.add_argument("--force", action="store_true", help="rebuild even if built")
    p.set_defaults(func=_build_tiny)
    for variant, minutes in (("judge", 56), ("teacher", 15)):
        p = sub.add_parser(f"build-{variant}", help=f"train the built-in {variant} from the built tiny model "
                           f"(maintainers; about {minutes} min on 2 cores)")  # fmt: skip
        p.add_argument(
            "--out", help=f"folder (default: the shipped {variant}, workers/training/assets/{variant})"
        )
        if variant == "judge":
            stages = p.add_mutually_exclusive_group()
            stages.add_argument("--compare-from", metavar="JUDGE_DIR", help="train only the second and third "
                                "stages (comparisons, then the mark; about 16 min) from this scoring judge")  # fmt: skip
            stages.add_argument("--mark-from", metavar="JUDGE_DIR", help="train only the third stage "
                                "(each check ends with its mark; about 7 min) from this comparing judge")  # fmt: skip
        p.set_defaults(func=_build_helper, variant=variant)
    p = sub.add_parser("validate", help="check a dataset against a technique")
    p.add_argument("dataset")
    p.add_argument("--technique", required=True, choices=list(REGISTRY))
    p.set_defaults(func=_validate)
    p = sub.add_parser("synthesize", help="generate a dataset with a teacher model")
    p.add_argument("spec")
    p.set_defaults(func=_synthesize)
    p = sub.add_parser("merge", help="merge a LoRA adapter into its base model and save it")
    p.add_argument("adapter")
    p.add_argument("out")
    p.set_defaults(func=_merge)
    p = sub.add_parser("resilient", help="checkpointless training: torchft replicas on this machine")
    p.add_argument("spec")
    p.add_argument("--replicas", type=int, help="how many (default: the spec's maximum)")
    p.add_argument("--kill-every", type=int, help="fault injection: SIGKILL a replica every K steps")
    p.add_argument("--schedule", help="elastic: STEP:COUNT,... e.g. 0:1,40:3,80:2")
    p.add_argument("--spares", type=int, default=0, help="warm spare processes that replace lost replicas")
    p.add_argument(
        "--no-replenish",
        dest="replenish",
        action="store_false",
        help="load the spares before training and do not replace them as they are used",
    )
    p.set_defaults(func=_resilient)
    p = sub.add_parser("coordinate", help="a resilient job's lighthouse and MLflow run")
    p.add_argument("spec")
    p.set_defaults(func=_coordinate)
    p = sub.add_parser("replica", help="one replica of a resilient job")
    p.add_argument("spec")
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--lighthouse", required=True)
    p.add_argument("--standby", action="store_true", help="a warm spare: load, then wait for INDEX.go")
    p.set_defaults(func=_replica)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
