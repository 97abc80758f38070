import pytest
import torch

from helpers import split_validation


def test_split_is_a_seeded_partition_independent_of_the_global_seed():
    X = torch.arange(100).float().reshape(100, 1)
    y = torch.arange(100)
    torch.manual_seed(1)
    a = split_validation(X, y, val_size=10, seed=3)
    torch.manual_seed(2)
    b = split_validation(X, y, val_size=10, seed=3)
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    X_train, y_train, X_val, y_val = a
    assert len(y_val) == 10 and len(y_train) == 90
    assert sorted(torch.cat([y_train, y_val]).tolist()) == list(range(100))  # nothing lost, nothing twice
    assert torch.equal(X_val[:, 0].long(), y_val)  # rows stay with their labels
    assert not torch.equal(y_val, torch.arange(10))  # drawn at random, not the first ten
    other = split_validation(X, y, val_size=10, seed=4)
    assert not torch.equal(other[3], y_val)


@pytest.mark.parametrize("val_size", [0, 100, 1.5, True])
def test_impossible_sizes_are_refused(val_size):
    with pytest.raises(ValueError, match="val_size"):
        split_validation(torch.zeros(100, 1), torch.zeros(100), val_size=val_size)


def test_lengths_must_match():
    with pytest.raises(ValueError, match="same length"):
        split_validation(torch.zeros(5, 1), torch.zeros(4))
