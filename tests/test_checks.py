"""The range checks behind every flag, at their exact boundaries."""

from dataclasses import dataclass, field

import pytest

from utils.checks import (
    at_least,
    check_fields,
    field_problems,
    non_negative,
    nonzero,
    one_of,
    optional,
    positive,
)
from utils.errors import InputError

NOT_NUMBERS = [True, False, "1", None, [1]]


@pytest.mark.parametrize("value", [1e-300, 5e-324, 1, 0.001, 1e300])
def test_positive_accepts_any_finite_number_above_zero(value):
    assert positive(value) is None


@pytest.mark.parametrize("value", [0, 0.0, -0.0, -5e-324, -1, float("inf"), float("nan"), *NOT_NUMBERS])
def test_positive_refuses_zero_negatives_non_finite_and_non_numbers(value):
    assert positive(value) == "must be a finite number above 0"


@pytest.mark.parametrize("value", [5e-324, -5e-324, -5.0, 3])
def test_nonzero_accepts_both_signs(value):
    assert nonzero(value) is None


@pytest.mark.parametrize("value", [0, 0.0, -0.0, float("-inf"), float("nan"), *NOT_NUMBERS])
def test_nonzero_refuses_zero_non_finite_and_non_numbers(value):
    assert nonzero(value) == "must be a finite number other than 0"


@pytest.mark.parametrize("value", [0, 0.0, -0.0, 5e-324, 2])
def test_non_negative_accepts_zero(value):
    assert non_negative(value) is None


@pytest.mark.parametrize("value", [-5e-324, -1, float("inf"), float("nan"), *NOT_NUMBERS])
def test_non_negative_refuses_negatives_non_finite_and_non_numbers(value):
    assert non_negative(value) == "must be a finite number, 0 or above"


def test_at_least_accepts_its_bound_and_refuses_one_below():
    check = at_least(16)
    assert check(16) is None and check(17) is None
    assert check(15) == "must be a whole number of at least 16"
    for value in (16.0, True, "16", None):
        assert check(value) == "must be a whole number of at least 16"
    assert at_least(0)(0) is None and at_least(0)(-1) == "must be a whole number of at least 0"


def test_one_of_names_the_choices():
    check = one_of(("fp32", "bf16"))
    assert check("fp32") is None and check("bf16") is None
    assert check("fp16") == "must be one of fp32, bf16"


def test_optional_lets_none_through_and_checks_the_rest():
    check = optional(at_least(16))
    assert check(None) is None and check(16) is None
    assert check(8) == "must be a whole number of at least 16"


@dataclass
class Example:
    rate: float = field(default=0.1, metadata={"check": positive})
    size: int = field(default=16, metadata={"check": at_least(16)})
    name: str = "free"


def test_field_problems_name_each_flag_with_its_value():
    assert field_problems(Example()) == []
    assert field_problems(Example(rate=0.0, size=8, name="x")) == [
        "--rate 0.0: must be a finite number above 0",
        "--size 8: must be a whole number of at least 16",
    ]


def test_check_fields_raises_one_error_listing_every_problem_of_every_config():
    check_fields(Example(), Example())
    with pytest.raises(InputError) as error:
        check_fields(Example(rate=-1.0), Example(size=3))
    assert str(error.value) == (
        "--rate -1.0: must be a finite number above 0\n--size 3: must be a whole number of at least 16"
    )
