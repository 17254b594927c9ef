import pytest

from vaelib.schedules import Constant, Cyclical, LinearWarmup, Sigmoid, make_schedule


def test_constant():
    assert Constant(0.5)(0) == 0.5 and Constant(0.5)(10_000) == 0.5


def test_linear_warmup_values():
    s = LinearWarmup(beta_max=2.0, warmup_steps=100)
    assert [s(0), s(25), s(50), s(100), s(1000)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    # the original CLI's rule: start at --beta, grow by beta_max / period per step, cap at beta_max
    s = LinearWarmup(beta_max=1.0, warmup_steps=10, start=0.2)
    assert s(0) == 0.2 and s(5) == pytest.approx(0.7) and s(8) == 1.0


def test_cyclical_values():
    s = Cyclical(beta_max=1.0, period=100, ratio=0.5)
    assert [s(0), s(25), s(50), s(99), s(100), s(125)] == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5]


def test_sigmoid_values():
    s = Sigmoid(beta_max=1.0, midpoint=100, width=10)
    assert s(100) == 0.5
    assert s(0) < 1e-4 and s(200) > 1 - 1e-4
    assert s(90) < s(100) < s(110)


def test_reprs_are_readable():
    assert repr(LinearWarmup(1.0, 500)) == "LinearWarmup(beta_max=1, warmup_steps=500, start=0)"
    assert repr(make_schedule("cyclical", 4.0, 200)) == "Cyclical(beta_max=4, period=200, ratio=0.5)"


def test_bad_arguments():
    with pytest.raises(ValueError):
        LinearWarmup(1.0, 0)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        make_schedule("exponential")
