"""The training flag table of docs/training.md is checked against the dataclasses, the one source of
every default: each flag's default cell prints the field's default as the table writes values (`true`,
`none`, `` `path` ``, ...), or the field's `default_text` where it has one."""

import re
from dataclasses import fields
from enum import Enum
from pathlib import Path

import pytest

from train_config import RunConfig, SegmentationTrainParams, resolve_config
from utils.flags import field_default

TRAINING_DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
FLAG_FIELDS = [
    f for config in (SegmentationTrainParams, RunConfig) for f in fields(config) if "help" in f.metadata
]
# Written in words in the table: --out has no default.
IN_WORDS = {"out": "required"}


def printed_default(f) -> str:
    """How the table prints the default of field `f`."""
    if f.name in IN_WORDS:
        return IN_WORDS[f.name]
    if "default_text" in f.metadata:
        return f.metadata["default_text"]
    value = field_default(f)
    if isinstance(value, Enum):
        return f"`{value.name.lower()}`"
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, str):
        return f"`{value}`"
    return str(value)


def documented_defaults() -> dict[str, str]:
    """`--flag` -> its default cell in the table; a row naming k flags has k comma-separated defaults
    (or one shared default)."""
    text = TRAINING_DOC.read_text()
    table = text.split("Every flag, with its default", 1)[1].split("Outputs in `--out`", 1)[0]
    defaults = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`--"):
            continue
        flags = re.findall(r"`(--\w+)`", cells[0])
        values = cells[1].split(", ") if len(flags) > 1 else [cells[1]]
        defaults.update(zip(flags, values if len(values) == len(flags) else values * len(flags), strict=True))
    return defaults


@pytest.mark.parametrize("f", FLAG_FIELDS, ids=lambda f: f.name)
def test_the_table_prints_each_flag_s_default(f):
    assert documented_defaults()[f"--{f.name}"] == printed_default(f)


def test_the_table_lists_every_flag_and_no_other():
    extra = {"--demo", "--args", "--faithful", "--gen_devices", "--debug"}
    assert set(documented_defaults()) == {f"--{f.name}" for f in FLAG_FIELDS} | extra


def test_command_line_without_flags_gives_the_dataclass_defaults():
    config = resolve_config(["--out", "x"])
    assert config.params == SegmentationTrainParams()
    assert config.run == RunConfig(out="x")
