"""Config dataclass fields that are also command-line flags, declared once with their help text.

    rate: float = flag(0.001, "Adam learning rate", check=positive)

`add_flags(parser, Config)` adds `--rate` with its help and default (shown once); `check` is run
by `utils.checks.check_fields`; `parse` converts the text; `metavar`, `default_text` and `alias`
shape the help; `nargs` makes a list flag.
"""

import argparse
import dataclasses
from dataclasses import field
from enum import Enum

from utils.checks import at_least, optional

METAVARS = {bool: "BOOL", int: "N", float: "NUM", str: "TEXT"}


def parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def optional_int(text: str) -> int | None:
    """A whole number, or None for `none` (and 0, as the original's unset sizes)."""
    return None if str(text).lower() in ("none", "0") else int(text)


def parse_device(text: str | int) -> str:
    """A torch device name; a bare GPU index (the original's `--device 0`) means that CUDA device."""
    text = str(text).strip()
    return f"cuda:{text}" if text.isdigit() else text


CONVERTERS = {bool: parse_bool, int: int, float: float, str: str}


def flag(default=dataclasses.MISSING, help: str = "", **metadata):
    """A dataclass field described as a command-line flag (see the module doc)."""
    if isinstance(default, list | dict):
        return field(default_factory=type(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def field_default(f: dataclasses.Field):
    return f.default if f.default is not dataclasses.MISSING else f.default_factory()


def flag_converter(f: dataclasses.Field):
    return f.metadata.get("parse") or CONVERTERS[type(f.default)]


def flag_help(f: dataclasses.Field) -> str:
    default = f.metadata.get("default_text")
    if default is None:
        value = field_default(f)
        default = value.name.lower() if isinstance(value, Enum) else value
    return f"{f.metadata['help']} (default: {default})" if default != "" else f.metadata["help"]


def from_namespace(dataclass_type, namespace: argparse.Namespace):
    """The `dataclass_type` instance of the flags parsed into `namespace` (fields it lacks keep their
    defaults)."""
    values = {
        f.name: getattr(namespace, f.name)
        for f in dataclasses.fields(dataclass_type)
        if hasattr(namespace, f.name)
    }
    return dataclass_type(**values)


def add_flags(parser, dataclass_type, defaults: bool = False) -> None:
    """One flag per field of `dataclass_type` that has a help text.

    With `defaults` the parsed namespace holds every field (its default when the flag is absent);
    otherwise absent flags are left out, so that presets and files can fill them.
    """
    for f in dataclasses.fields(dataclass_type):
        if "help" not in f.metadata:
            continue
        names = [f"--{f.name}", *([f.metadata["alias"]] if "alias" in f.metadata else [])]
        options = {"metavar": f.metadata.get("metavar") or METAVARS[type(f.default)], "help": flag_help(f)}
        if defaults:
            options["default"] = field_default(f)
        if "nargs" in f.metadata:
            parser.add_argument(*names, nargs=f.metadata["nargs"], **options)
        else:
            parser.add_argument(*names, type=flag_converter(f), **options)


def threads_flag():
    """The `--threads` field of every entry point (None: torch's own choice)."""
    return flag(
        None,
        "torch CPU threads",
        parse=int,
        check=optional(at_least(1)),
        metavar="N",
        default_text="torch's choice",
    )


def device_flag():
    """The `--device` field of every entry point (None: CUDA when available, else the CPU)."""
    help_text = "cpu, cuda, cuda:1, or a GPU index (0 = cuda:0)"
    return flag(None, help_text, parse=parse_device, metavar="DEVICE", default_text="CUDA if available")
