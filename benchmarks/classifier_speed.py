"""Per-face cost of the expression models on this machine (issue: <= 5 ms/face at batch 16 on CPU).

Prints one table: milliseconds per face at several batch sizes for every shipped model
(a decision rule runs its members and its mix), and for both heads run as a mean rule (two
forward passes, the cost of the mixes ``scripts/tune_decision_rule.py`` compares), next to a
baseline measured in the same run: the plain 10M-parameter VGG-style network that the
project's seeds used (conv 64-128-256-512 at 48x48), so the ratio shows what the design buys.

    python benchmarks/classifier_speed.py [--threads N] [--repeats R] [--models NAME_OR_PATH ...]
"""

from __future__ import annotations

import argparse
import time

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from fervid.devices import cpu_name
from fervid.models.expression_rule import RuleNet
from fervid.models.expression_weights import load_expression_model, shipped_models


def plain_vgg(num_classes: int = 8) -> nn.Module:
    """The seeds' plain VGG-style baseline (~10M parameters)."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(True), nn.MaxPool2d(2)]  # fmt: skip

    layers = block(1, 64) + block(64, 128) + block(128, 256) + block(256, 512)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 9, 1024), nn.ReLU(True), nn.Linear(1024, num_classes))


@torch.inference_mode()
def ms_per_face(model: nn.Module, batch: int, size: int, repeats: int) -> float:
    model.eval()
    x = torch.randn(batch, 1, size, size)
    for _ in range(3):
        model(x)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - start)
    return best * 1000 / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", nargs="+", help="model names or .pt files (default: the shipped models)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = (1, 16, 64)
    baseline = plain_vgg()
    base = {b: ms_per_face(baseline, b, 48, args.repeats) for b in batches}
    table = Table(title=f"Expression model cost, ms per face ({cpu_name()}, "
                        f"{torch.get_num_threads()} threads, torch {torch.__version__})")  # fmt: skip
    table.add_column("model")
    table.add_column("params")
    for b in batches:
        table.add_column(f"batch {b}", justify="right")
    table.add_column("vs baseline @16", justify="right")
    table.add_row("plain VGG (baseline)", f"{sum(p.numel() for p in baseline.parameters()) / 1e6:.1f}M",
                  *(f"{base[b]:.2f}" for b in batches), "1.0x")  # fmt: skip
    rows = [
        (name, m.model, m.config)
        for name, m in ((n, load_expression_model(n)) for n in args.models or shipped_models())
    ]
    heads = [(n, m, c) for n, m, c in rows if n in ("ferplus", "fer2013")]
    if len(heads) == 2 and not args.models:
        (_, first, cfg), (_, second, other) = sorted(heads, key=lambda h: h[0] != "ferplus")
        both = RuleNet([first, second], [cfg.temperature, other.temperature], [cfg.classes, other.classes],
                       cfg.classes, [0.0] * len(cfg.classes)).eval()  # fmt: skip
        rows.append(("ferplus + fer2013 (mean, two passes)", both, cfg))
    for name, model, cfg in rows:
        cost = {b: ms_per_face(model, b, cfg.input_size, args.repeats) for b in batches}
        table.add_row(name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M",
                      *(f"{cost[b]:.2f}" for b in batches), f"{base[16] / cost[16]:.1f}x faster")  # fmt: skip
    Console().print(table)


if __name__ == "__main__":
    main()
