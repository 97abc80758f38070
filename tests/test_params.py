import random

import numpy as np
import pytest
import torch

from helpers import check_parameter, seed_everything, setup


def test_seed_everything_repeats_every_generator():
    g1 = seed_everything(3)
    a = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g1))
    g2 = seed_everything(3)
    b = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(seed)


def test_setup_seeds_and_returns_device():
    device = setup("cpu", 5)
    first = torch.rand(3)
    setup("cpu", 5)
    assert device == torch.device("cpu")
    assert torch.equal(first, torch.rand(3))


def test_setup_rejects_unknown_device():
    with pytest.raises(ValueError, match="device must be one of"):
        setup("tpu", 0)


def test_check_parameter_accepts_and_converts():
    assert check_parameter("epochs", 3, int, minimum=1) == 3
    value = check_parameter("learning_rate", 1, float, minimum=0)
    assert value == 1.0 and isinstance(value, float)


@pytest.mark.parametrize(
    "value, kind, minimum, maximum",
    [
        (0, int, 1, None),
        (2.5, int, 1, None),
        (True, int, 0, None),
        ("3", int, 1, None),
        (-0.1, float, 0, None),
        (2.0, float, 0, 1),
        (False, float, None, None),
    ],
)
def test_check_parameter_rejects_with_a_clear_message(value, kind, minimum, maximum):
    with pytest.raises(ValueError) as info:
        check_parameter("knob", value, kind, minimum=minimum, maximum=maximum)
    message = str(info.value)
    assert message.startswith("parameter knob must be")
    assert repr(value) in message


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), -float("inf"), np.float64("nan"), 10**400],
    ids=["nan", "inf", "-inf", "numpy-nan", "10**400"],
)
def test_check_parameter_refuses_non_finite_numbers(value):
    with pytest.raises(
        ValueError,
        match=r"^parameter learning_rate must be a finite number >= 1e-06 and <= 10, "
        r"not nan or infinity; got ",
    ):
        check_parameter("learning_rate", value, float, minimum=1e-6, maximum=10)
    with pytest.raises(ValueError, match="not nan or infinity"):
        check_parameter("learning_rate", value, float)  # without bounds too: nan compares as neither < nor >


def test_check_parameter_allows_non_finite_numbers_when_asked():
    assert check_parameter("target", float("inf"), float, allow_nonfinite=True) == float("inf")
    assert np.isnan(check_parameter("target", float("nan"), float, allow_nonfinite=True))
    assert check_parameter("big", 10**400, int, minimum=1) == 10**400  # integers are always finite


def test_check_parameter_shortens_a_huge_value_in_the_message():
    with pytest.raises(ValueError) as info:
        check_parameter("epochs", "x" * 10_000, int)
    assert len(str(info.value)) < 200 and "(10002 characters)" in str(info.value)
