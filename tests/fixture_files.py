"""Reading the reference fixtures of tests/fixtures/ (recorded from the original implementation).

Kept apart from conftest.py, whose environment settings for the suite must not reach the bench scripts
that read fixtures too.
"""

import json
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> dict[str, torch.Tensor]:
    return torch.load(FIXTURES / name, weights_only=True)


def read_keys_file(name: str) -> list[tuple[str, list[int], str]]:
    """(key, shape, dtype) rows of a `*_keys.txt` fixture, comments skipped."""
    rows = []
    for line in (FIXTURES / name).read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, json.loads(shape), dtype))
    return rows


def state_dict_rows(module: torch.nn.Module) -> list[tuple[str, list[int], str]]:
    state = module.state_dict()
    return [(key, list(state[key].shape), str(state[key].dtype)) for key in sorted(state)]
