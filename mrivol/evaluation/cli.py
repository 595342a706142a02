"""``mrivol evaluate`` and ``mrivol evaluate-seg``: the evaluation stage's commands."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mrivol.evaluation.evaluate import evaluate
    from mrivol.training.workflow import default_network

    metrics = evaluate(
        bundle=args.bundle,
        run=args.run,
        data=args.data,
        out=args.out,
        mc_samples=args.mc_samples,
        tta=args.tta,
        allow_subject_overlap=args.allow_subject_overlap,
        net=args.net or default_network(args.bundle),
        fold=args.fold,
    )
    if "fold_mean_dice_mean" in metrics:  # a CV parent: its folds and ensemble side by side
        from mrivol.evaluation.evaluate_cv import format_cv_evaluation

        print(format_cv_evaluation(metrics, tta=args.tta))
    for name, value in sorted(metrics.items()):
        print(f"{name:>20s}  {value:.4f}")
    return 0


def cmd_evaluate_seg(args: argparse.Namespace) -> int:
    from mrivol.evaluation.seg_evaluation import main_evaluate_seg

    return main_evaluate_seg(args)


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and ``evaluate-seg`` to the ``mrivol`` parser."""
    from mrivol.evaluation.seg_evaluation import add_evaluate_seg_arguments
    from mrivol.training.cli import add_bundle_arguments

    p = sub.add_parser(
        "evaluate",
        help="evaluate a run on its validation fold (classification bundles: on a test "
        "manifest); log to the same run",
    )
    p.set_defaults(func=cmd_evaluate)
    add_bundle_arguments(p)
    p.add_argument(
        "--run",
        required=True,
        help="MLflow run id (a training run, or a `mrivol cv` parent) or checkpoint file",
    )
    p.add_argument(
        "--data",
        default=None,
        help="manifest (default: the run's own; a CV parent or a classification bundle such "
        "as ad_cls: the test cases)",
    )
    p.add_argument(
        "--allow-subject-overlap",
        action="store_true",
        help="classification bundles: score a test manifest that shares subjects with the "
        "run's training or validation set (refused by default; synthetic cases always are)",
    )
    p.add_argument("--tta", action="store_true", help="mirror every window (8 passes)")
    p.add_argument("--out", default=None, help="report directory")
    p.add_argument(
        "--mc-samples",
        type=int,
        default=10,
        help="MC-dropout samples of the uncertainty maps (default 10; 1: none, faster)",
    )

    p = sub.add_parser("evaluate-seg", help="BraTS Dice / HD95 / QU-BraTS of predictions")
    p.set_defaults(func=cmd_evaluate_seg)
    add_evaluate_seg_arguments(p)
