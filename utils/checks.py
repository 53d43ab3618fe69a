"""Range checks of config dataclass fields, declared next to each field and run all at once.

    rate: float = field(default=0.001, metadata={"check": positive})

`check_fields(config)` reports every field whose value fails its check, each on its own line and
named as the command-line flag (`--rate`), so one run shows all that must be fixed.
"""

import math
from collections.abc import Callable
from dataclasses import fields

from utils.errors import InputError

Check = Callable[[object], str | None]


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def positive(value) -> str | None:
    """A finite number above 0 (learning rates, radii, decay factors)."""
    if not _number(value) or not math.isfinite(value) or value <= 0:
        return "must be a finite number above 0"
    return None


def nonzero(value) -> str | None:
    """A finite number other than 0 (a shift radius: its sign picks the direction's end)."""
    if not _number(value) or not math.isfinite(value) or value == 0:
        return "must be a finite number other than 0"
    return None


def non_negative(value) -> str | None:
    if not _number(value) or not math.isfinite(value) or value < 0:
        return "must be a finite number, 0 or above"
    return None


def at_least(low: int) -> Check:
    """An integer of at least `low` (sizes, counts, intervals)."""

    def check(value) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            return f"must be a whole number of at least {low}"
        return None

    return check


def in_unit_interval(value) -> str | None:
    """A share: from 0 to 1."""
    return None if _number(value) and 0 <= value <= 1 else "must be from 0 to 1"


def one_of(choices: tuple) -> Check:
    """One of `choices` (an enumerated setting)."""
    return lambda value: None if value in choices else f"must be one of {', '.join(map(str, choices))}"


def optional(check: Check) -> Check:
    """`check`, or None (the field is off)."""
    return lambda value: None if value is None else check(value)


def field_problems(config) -> list[str]:
    """`--name value: what is wrong` for each field of the dataclass `config` failing its check."""
    problems = []
    for f in fields(config):
        check = f.metadata.get("check")
        value = getattr(config, f.name)
        problem = check(value) if check else None
        if problem:
            problems.append(f"--{f.name} {value}: {problem}")
    return problems


def check_fields(*configs) -> None:
    """Raise one `InputError` listing every failing field of the given dataclass instances."""
    problems = [problem for config in configs for problem in field_problems(config)]
    if problems:
        raise InputError("\n".join(problems))
