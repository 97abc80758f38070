"""``python -m helpers bench``: train the series' network with the plain and the fast recipe and compare.

plain: torchvision Dataset with a per-sample v2 transform (ToImage + ToDtype), DataLoader (batch 64,
       shuffled), SGD with learning rate 1e-2 and momentum 0.9: lesson 06's plain optimizer settings on
       lesson 02's per-sample data path (lesson 06 itself trains its plain recipe on the fast data path).
fast:  the whole set as two tensors on the device (helpers.load_tensors), shuffled by
       index with a seeded generator (helpers.TensorLoader), Adam with learning rate 1e-3:
       lesson 06's fast recipe.
       Its default batch of 256 keeps the per-batch Python overhead small next to the
       matrix products, so an epoch costs little more than the pure compute.

Pure compute is one epoch of train_loop over the same data already cut into batches
in memory: forward, backward and optimizer step, nothing else. Epoch times count the
training pass only (the evaluation on the test set after each epoch is not included).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from helpers.commands.errors import CommandError, reports_errors

if TYPE_CHECKING:  # torch is imported where it is used, so that `bench --help` starts at once
    import torch
    from torch import nn

PLAIN_BATCH_SIZE = 64
PLAIN_LEARNING_RATE = 1e-2
PLAIN_MOMENTUM = 0.9
FAST_BATCH_SIZE = 256
FAST_LEARNING_RATE = 1e-3
TARGET_ACCURACY = 0.85
WARMUP_BATCHES = 5


@dataclass
class RecipeResult:
    """One recipe's run: the fit() history and the pure compute time of one epoch."""

    name: str
    batch_size: int
    optimizer: str
    history: dict[str, list[float]]
    compute_seconds: float

    @property
    def epochs(self) -> int:
        return len(self.history["test_accuracy"])

    @property
    def seconds_per_epoch(self) -> float:
        return statistics.median(self.history["train_seconds"])

    @property
    def total_seconds(self) -> float:
        return sum(self.history["train_seconds"])

    @property
    def final_accuracy(self) -> float:
        return self.history["test_accuracy"][-1]

    def reached(self, accuracy: float) -> tuple[int, float] | None:
        """(epochs, training seconds) until the test accuracy first reached ``accuracy``; None if never."""
        elapsed = 0.0
        for epoch, (acc, seconds) in enumerate(zip(self.history["test_accuracy"], self.history["train_seconds"]), 1):
            elapsed += seconds
            if acc >= accuracy:
                return epoch, elapsed
        return None


def compute_seconds(
    X: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer],
    device: torch.device,
) -> float:
    """Seconds for one epoch of forward, backward and optimizer step over batches already in memory."""
    from torch import nn

    from ..model import NeuralNetwork
    from ..training import train_loop

    batches = list(zip(X.split(batch_size), y.split(batch_size)))  # views: no copy, no per-sample work
    model = NeuralNetwork().to(device)
    optimizer = make_optimizer(model)
    loss_fn = nn.CrossEntropyLoss()
    train_loop(batches[:WARMUP_BATCHES], model, loss_fn, optimizer, device)  # first calls allocate memory
    _synchronize(device)
    start = time.perf_counter()
    train_loop(batches, model, loss_fn, optimizer, device)  # ends with .item(): waits for the device
    return time.perf_counter() - start


def _synchronize(device: torch.device) -> None:
    import torch

    if device.type != "cpu" and hasattr(torch, device.type):
        getattr(torch, device.type).synchronize()


def plain_recipe(data_root: str, device: torch.device, seed: int, epochs: int, progress: bool) -> RecipeResult:
    """DataLoader with the v2 transform per sample, SGD with momentum: train ``epochs`` epochs and measure its pure compute."""
    import torch
    from torch import nn
    from torch.utils.data import DataLoader

    from ..data import fashion_mnist
    from ..model import NeuralNetwork
    from ..reproducibility import seed_everything
    from ..tensors import load_tensors
    from ..training import fit

    generator = seed_everything(seed)
    train_dataloader = DataLoader(
        fashion_mnist(data_root, train=True), batch_size=PLAIN_BATCH_SIZE, shuffle=True, generator=generator
    )
    test_dataloader = DataLoader(fashion_mnist(data_root, train=False), batch_size=PLAIN_BATCH_SIZE)
    model = NeuralNetwork().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=PLAIN_LEARNING_RATE, momentum=PLAIN_MOMENTUM)
    history = fit(model, train_dataloader, test_dataloader, nn.CrossEntropyLoss(), optimizer, epochs, device, progress)
    X, y = load_tensors(data_root, train=True, device=device)
    compute = compute_seconds(
        X,
        y,
        PLAIN_BATCH_SIZE,
        lambda m: torch.optim.SGD(m.parameters(), lr=PLAIN_LEARNING_RATE, momentum=PLAIN_MOMENTUM),
        device,
    )
    return RecipeResult(
        "plain", PLAIN_BATCH_SIZE, f"SGD lr {PLAIN_LEARNING_RATE:g} momentum {PLAIN_MOMENTUM:g}", history, compute
    )


def fast_recipe(
    data_root: str, device: torch.device, seed: int, epochs: int, batch_size: int, progress: bool
) -> RecipeResult:
    """Tensors on the device, shuffled by index, Adam: train ``epochs`` epochs and measure its pure compute."""
    import torch
    from torch import nn

    from ..model import NeuralNetwork
    from ..reproducibility import seed_everything
    from ..tensors import TensorLoader, load_tensors
    from ..training import fit

    generator = seed_everything(seed)
    X, y = load_tensors(data_root, train=True, device=device)
    X_test, y_test = load_tensors(data_root, train=False, device=device)
    train_dataloader = TensorLoader(X, y, batch_size=batch_size, shuffle=True, generator=generator)
    test_dataloader = TensorLoader(X_test, y_test, batch_size=1000)
    model = NeuralNetwork().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=FAST_LEARNING_RATE)
    history = fit(model, train_dataloader, test_dataloader, nn.CrossEntropyLoss(), optimizer, epochs, device, progress)
    compute = compute_seconds(
        X, y, batch_size, lambda m: torch.optim.Adam(m.parameters(), lr=FAST_LEARNING_RATE), device
    )
    return RecipeResult("fast", batch_size, f"Adam lr {FAST_LEARNING_RATE:g}", history, compute)


def _markdown(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        return "| " + " | ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|"
    return [line(rows[0]), rule] + [line(row) for row in rows[1:]]


def epoch_table(plain: RecipeResult, fast: RecipeResult) -> list[str]:
    """Per epoch: training seconds and test accuracy of each recipe."""
    rows = [["epoch", "plain s", "plain accuracy", "fast s", "fast accuracy"]]
    for epoch in range(max(plain.epochs, fast.epochs)):
        row = [str(epoch + 1)]
        for result in (plain, fast):
            if epoch < result.epochs:
                row += [
                    f"{result.history['train_seconds'][epoch]:.2f}",
                    f"{result.history['test_accuracy'][epoch]:.1%}",
                ]
            else:
                row += ["", ""]
        rows.append(row)
    return _markdown(rows, [True] * 5)


def summary_table(plain: RecipeResult, fast: RecipeResult) -> list[str]:
    """Per recipe: batch, optimizer, s/epoch, its ratio to pure compute, final accuracy, time to the target."""
    rows = [
        [
            "recipe",
            "batch",
            "optimizer",
            "s/epoch (median)",
            "pure compute s/epoch",
            "x compute",
            "final accuracy",
            f"time to {TARGET_ACCURACY:.0%}",
        ]
    ]
    for result in (plain, fast):
        reached = result.reached(TARGET_ACCURACY)
        rows.append(
            [
                result.name,
                str(result.batch_size),
                result.optimizer,
                f"{result.seconds_per_epoch:.2f}",
                f"{result.compute_seconds:.2f}",
                f"{result.seconds_per_epoch / result.compute_seconds:.2f}x",
                f"{result.final_accuracy:.1%}",
                f"{reached[1]:.1f} s (epoch {reached[0]})" if reached else "not reached",
            ]
        )
    return _markdown(rows, [False, True, False, True, True, True, True, True])


def _epochs(count: int) -> str:
    return f"{count} epoch" + ("" if count == 1 else "s")


def summary_line(plain: RecipeResult, fast: RecipeResult) -> str:
    """The last line: both recipes' results and how much sooner the fast one gets there."""
    head = (
        f"fast recipe: {fast.final_accuracy:.1%} test accuracy after {_epochs(fast.epochs)} in "
        f"{fast.total_seconds:.1f} s; plain recipe: {plain.final_accuracy:.1%} after {_epochs(plain.epochs)} "
        f"in {plain.total_seconds:.1f} s"
    )
    target = f"{TARGET_ACCURACY:.0%}"
    fast_at, plain_at = fast.reached(TARGET_ACCURACY), plain.reached(TARGET_ACCURACY)
    if fast_at and plain_at:
        return f"{head}; {plain_at[1] / fast_at[1]:.1f}x faster to {target}"
    per_epoch = f"a plain epoch takes {plain.seconds_per_epoch / fast.seconds_per_epoch:.1f}x as long as a fast one"
    passed = fast.reached(plain.final_accuracy)
    if fast_at and passed:  # reaching the target, the fast recipe also passed the plain recipe's (lower) final accuracy
        epochs, seconds = passed
        return (
            f"{head} and never reached {target}; the fast recipe passed the plain recipe's final "
            f"{plain.final_accuracy:.1%} after {_epochs(epochs)} in {seconds:.1f} s, "
            f"{plain.total_seconds / seconds:.1f}x sooner"
        )
    if plain_at:
        return f"{head}; only the plain recipe reached {target}; {per_epoch}"
    return f"{head}; neither recipe reached {target}; {per_epoch}"


def format_report(plain: RecipeResult, fast: RecipeResult, device: torch.device) -> str:
    """The whole report: setting, per-epoch table, summary table, last line."""
    import torch

    return "\n".join(
        [
            f"Fashion-MNIST, NeuralNetwork, device {device}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} CPU threads; times are training passes only (evaluation excluded)",
            "",
            *epoch_table(plain, fast),
            "",
            *summary_table(plain, fast),
            "",
            summary_line(plain, fast),
        ]
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1; got {text}")
    return value


@reports_errors
def main(argv: Sequence[str]) -> int:
    """``python -m helpers bench``: run both recipes on this machine and print the comparison."""
    parser = argparse.ArgumentParser(
        prog="python -m helpers bench",
        allow_abbrev=False,  # --hide is not --hide-solutions: a typo is an error, not a guess
        description="Train the series' network with the plain recipe (DataLoader + v2 transform per sample, "
        "SGD with momentum, batch 64) and the fast one (tensors on the device, Adam) "
        "and compare time and accuracy.",
    )
    parser.add_argument("--epochs-fast", type=_positive, default=10, help="epochs of the fast recipe (default 10)")
    parser.add_argument("--epochs-plain", type=_positive, default=10, help="epochs of the plain recipe (default 10)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N, mps or xpu")
    parser.add_argument("--data-root", default="data", help="folder holding FashionMNIST/ (default: data)")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=FAST_BATCH_SIZE,
        help=f"batch size of the fast recipe (default {FAST_BATCH_SIZE})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    args = parser.parse_args(list(argv))
    from ..params import setup

    try:
        device = setup(args.device, args.seed)
        progress = not args.no_progress
        print(f"plain recipe, {_epochs(args.epochs_plain)} ...", flush=True)
        plain = plain_recipe(args.data_root, device, args.seed, args.epochs_plain, progress)
        print(f"fast recipe, {_epochs(args.epochs_fast)} ...", flush=True)
        fast = fast_recipe(args.data_root, device, args.seed, args.epochs_fast, args.batch_size, progress)
    except (ValueError, RuntimeError) as exc:
        raise CommandError(str(exc), 2) from None
    print()
    print(format_report(plain, fast, device))
    return 0
