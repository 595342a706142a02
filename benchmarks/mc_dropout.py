"""Benchmark MC-dropout inference: one deterministic pass vs T batched samples vs T naive passes.

For each network, on the same input window (what a sliding-window inferer feeds the network;
every window of a case costs the same, so the ratios hold for a whole case):

* ``1 pass``: one deterministic forward pass (eval mode, ``torch.no_grad``);
* ``T batched``: :class:`mrivol.inference.uncertainty.McDropoutPredictor` with T samples (the
  deterministic prefix computed once, the stochastic rest on ``--batch-size`` rows per call);
* ``T naive``: T separate forward passes with dropout on (``mrivol.inference.mc_dropout``).

It also times the deterministic prefix alone (``forward_features`` of AG-MS3D-CNN) and prints
the share of one pass it takes: with a prefix share ``f`` the best T-sample cost is about
``1 + T (1 - f)`` passes, the bound that moving dropout later (or dropping some) approaches.
Median of ``--repeats`` runs after a warm-up; wall time, so run it on an otherwise idle machine.

Usage::

    python benchmarks/mc_dropout.py                        # UNet and AG-MS3D-CNN, T = 20, 64^3
    python benchmarks/mc_dropout.py --samples 10 --shape 96 96 64 --batch-size 5 10
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.timing import median_seconds  # noqa: E402
from mrivol.inference import mc_dropout  # noqa: E402
from mrivol.inference.uncertainty import McDropoutPredictor, first_dropout  # noqa: E402
from mrivol.networks import AGMS3DCNN  # noqa: E402


def _unet() -> torch.nn.Module:
    """The brats_seg default (bundles/brats_seg/configs/networks/unet.yaml)."""
    from monai.networks.nets import UNet

    return UNet(
        spatial_dims=3,
        in_channels=4,
        out_channels=3,
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2),
        num_res_units=2,
        norm="INSTANCE",
        dropout=0.1,
    )


def _agms() -> torch.nn.Module:
    return AGMS3DCNN(in_channels=4, out_channels=3, features=(16, 32, 64, 128), dropout=0.1)


NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {"unet": _unet, "agms3d_cnn": _agms}

DROPOUT_PLACEMENT = {
    "unet": "every residual unit, encoder included; first one after the first conv (full res)",
    "agms3d_cnn": "after the bottleneck and after each decoder block; none in the encoder",
}


def bench(name: str, *, shape: tuple[int, ...], samples: int, batch_sizes, repeats: int) -> None:
    """Print the timings and ratios of one network."""
    torch.manual_seed(0)
    net = NETWORKS[name]().eval()
    x = torch.randn(1, 4, *shape)
    one = median_seconds(lambda: McDropoutPredictor(net, samples=1)(x), repeats)

    def naive() -> None:
        with mc_dropout(net):
            for _ in range(samples):
                torch.sigmoid(net(x))

    t_naive = median_seconds(naive, repeats)
    batched = {
        b: median_seconds(
            lambda b=b: McDropoutPredictor(net, samples=samples, batch_size=b)(x), repeats
        )
        for b in batch_sizes
    }
    strategy = McDropoutPredictor(net, samples=samples).strategy
    print(f"\n{name}: dropout {DROPOUT_PLACEMENT[name]}")
    print(f"  first dropout layer: {first_dropout(net)}; prefix reuse: {strategy}")
    print(f"  1 pass                    {one:8.3f} s   1.00x")
    print(f"  {samples} naive passes           {t_naive:8.3f} s  {t_naive / one:5.2f}x")
    for b, t in batched.items():
        print(f"  {samples} batched (rows/call {b:>2}) {t:8.3f} s  {t / one:5.2f}x")
    if hasattr(net, "forward_features"):
        with torch.no_grad():
            prefix = median_seconds(lambda: net.forward_features(x), repeats)
        f = prefix / one
        print(
            f"  deterministic prefix      {prefix:8.3f} s  share f = {f:.2f} of one pass; "
            f"bound 1 + T(1 - f) = {1 + samples * (1 - f):.1f}x"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    parser.add_argument("--samples", type=int, default=20, help="MC samples T (default 20)")
    parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 64), help="window size")
    parser.add_argument(
        "--batch-size", type=int, nargs="+", default=[20, 5], help="rows per call to time"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x4x"
        f"{'x'.join(map(str, args.shape))}, T = {args.samples}, median of {args.repeats}"
    )
    for name in args.networks:
        bench(
            name,
            shape=tuple(args.shape),
            samples=args.samples,
            batch_sizes=args.batch_size,
            repeats=args.repeats,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
