"""Smoke test of ``python -m helpers bench`` on a tiny fake dataset: the report's structure, never its timings."""

import re

import pytest

from conftest import write_fake_fashion_mnist
from helpers.commands import bench


def test_bench_prints_both_tables_and_the_summary_line(tmp_path, capsys):
    root = write_fake_fashion_mnist(tmp_path, n_train=96, n_test=48)
    code = bench.main(
        [
            "--epochs-plain",
            "2",
            "--epochs-fast",
            "3",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--data-root",
            str(root),
            "--no-progress",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "plain recipe, 2 epochs ..." and lines[1] == "fast recipe, 3 epochs ..."

    start = lines.index(next(line for line in lines if line.startswith("| epoch")))
    epoch_rows = lines[start + 2 : start + 5]
    assert re.fullmatch(r"\|-+:\|(-+:\|){4}", lines[start + 1])
    assert [row.split("|")[1].strip() for row in epoch_rows] == ["1", "2", "3"]
    for row in epoch_rows[:2]:  # both recipes ran epochs 1 and 2
        assert re.fullmatch(r"\|\s+\d \|\s+\d+\.\d\d \|\s+\d+\.\d% \|\s+\d+\.\d\d \|\s+\d+\.\d% \|", row)
    assert re.fullmatch(r"\|\s+3 \|\s+\|\s+\|\s+\d+\.\d\d \|\s+\d+\.\d% \|", epoch_rows[2])  # plain stopped at 2

    summary = lines.index(next(line for line in lines if line.startswith("| recipe")))
    assert "| x compute |" in lines[summary] and "| time to 85% |" in lines[summary]
    plain_row, fast_row = lines[summary + 2], lines[summary + 3]
    assert re.match(r"\| plain +\| +64 \| SGD lr 0.01 momentum 0.9 \|", plain_row)
    assert re.match(r"\| fast +\| +32 \| Adam lr 0.001 +\|", fast_row)
    for row in (plain_row, fast_row):
        assert re.search(r"\| +\d+\.\d\dx \| +\d+\.\d% \| +(not reached|\d+\.\d s \(epoch \d+\)) \|$", row)

    assert re.fullmatch(
        r"fast recipe: \d+\.\d% test accuracy after 3 epochs in \d+\.\d s; "
        r"plain recipe: \d+\.\d% after 2 epochs in \d+\.\d s; .+",
        lines[-1],
    )


def result(name, accuracies, seconds, compute=1.0):
    history = {
        "test_accuracy": accuracies,
        "train_seconds": seconds,
        "train_loss": [0.0] * len(seconds),
        "test_loss": [0.0] * len(seconds),
    }
    return bench.RecipeResult(name, 64, "SGD lr 0.001", history, compute)


@pytest.mark.parametrize(
    "plain_acc, fast_acc, ending",
    [
        ([0.80, 0.86], [0.84, 0.88], r"; 5\.0x faster to 85%$"),
        (
            [0.60, 0.70],
            [0.72, 0.88],
            r" and never reached 85%; the fast recipe passed the plain recipe's final 70\.0% "
            r"after 1 epoch in 2\.0 s, 10\.0x sooner$",
        ),
        ([0.60, 0.70], [0.50, 0.60], r"; neither recipe reached 85%; a plain epoch takes 5\.0x as long as a fast one$"),
        ([0.60, 0.90], [0.50, 0.60], r"; only the plain recipe reached 85%; a plain epoch takes 5\.0x as long"),
    ],
)
def test_the_summary_line_is_honest_about_who_reached_85_percent(plain_acc, fast_acc, ending):
    plain = result("plain", plain_acc, [10.0, 10.0])
    fast = result("fast", fast_acc, [2.0, 2.0])
    line = bench.summary_line(plain, fast)
    assert line.startswith(
        f"fast recipe: {fast_acc[-1]:.1%} test accuracy after 2 epochs in 4.0 s; "
        f"plain recipe: {plain_acc[-1]:.1%} after 2 epochs in 20.0 s"
    )
    assert re.search(ending, line), line


def test_time_to_target_counts_training_seconds_until_the_first_epoch_there():
    run = result("fast", [0.80, 0.86, 0.84, 0.90], [1.0, 2.0, 3.0, 4.0])
    assert run.reached(0.85) == (2, 3.0)
    assert run.reached(0.95) is None
    assert run.seconds_per_epoch == 2.5  # median
