"""Step 2 of the conversion (PyTorch and h5py only): TF-Hub BigBiGAN generator variables -> state dict.

    python -m tf_tools.bigbigan2biggan --h5 VARS.h5 --out BigBiGAN_x1.pth

`VARS.h5` is written by `tf_tools.tfhub_to_h5`. The variables under `GenEncWrapper/Generator/` are
mapped by `tf_tools.mapping` to the `Generator` state dict of the 128-px BigBiGAN config, which
`make_big_gan` loads. The real module could differ from the names this converter was built from,
so every generator variable it does not recognise, every one it needs and cannot find, and every
one of an unexpected shape is named in the error, and nothing is written then.
"""

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tf_tools.h5_variables import open_variables
from tf_tools.mapping import GENERATOR_SCOPE, generator_mapping, target_generator
from utils.cli import run_cli
from utils.errors import InputError
from utils.run_files import atomic_torch_save


class ConversionError(InputError):
    """The variables are not those of the BigBiGAN generator this converter knows."""


def _generator_variables(names: list[str]) -> dict[str, str]:
    """Full names of the generator variables by their name below `GenEncWrapper/Generator/`.

    A checkpoint may nest the scope in another one (`module/GenEncWrapper/Generator/...`); names
    outside the scope (encoder, discriminator) are left out.
    """
    found: dict[str, list[str]] = {}
    for name in names:
        outer, scope, inner = name.partition(GENERATOR_SCOPE)
        if scope and (not outer or outer.endswith("/")):
            found.setdefault(inner, []).append(name)
    clashes = sorted(name for full in found.values() if len(full) > 1 for name in full)
    if clashes:
        raise ConversionError(f"generator variables found under several scopes: {', '.join(clashes)}")
    return {inner: full[0] for inner, full in found.items()}


def _problems(
    variables: Mapping, scoped: dict[str, str], expected: dict[str, list[int]], unused: frozenset[str]
) -> list[str]:
    """Unknown, missing and mis-shaped generator variables, each kind listed by full name."""
    unknown = sorted(scoped[name] for name in set(scoped) - set(expected) - unused)
    missing = sorted(GENERATOR_SCOPE + name for name in set(expected) - set(scoped))
    misshaped = sorted(
        f"{scoped[name]}: file {list(variables[scoped[name]].shape)} vs expected {shape}"
        for name, shape in expected.items()
        if name in scoped and list(variables[scoped[name]].shape) != shape
    )
    return [
        f"{title} ({len(names)}): {', '.join(names)}"
        for title, names in (("unknown", unknown), ("missing", missing), ("wrong shape", misshaped))
        if names
    ]


def convert(
    variables: Mapping[str, Any], config: dict | None = None, source: str = "the input"
) -> dict[str, torch.Tensor]:
    """The `Generator` state dict (tensors by key) of the BigBiGAN generator in `variables`.

    `variables` maps full TF names to arrays or h5py datasets; only the ones needed are read.
    `config` overrides entries of the 128-px BigBiGAN config (narrow generators in tests).
    """
    generator = target_generator(config)
    mapping = generator_mapping(generator)
    scoped = _generator_variables(list(variables))
    if not scoped:
        raise ConversionError(
            f"{source} has no variables under {GENERATOR_SCOPE}, so it is not a dump of the TF-Hub BigBiGAN "
            f"module ({len(variables)} variables, e.g. {', '.join(sorted(variables)[:3]) or 'none'})"
        )
    targets = generator.state_dict()
    expected = {rule.source: list(rule.layout.to_tf(targets[rule.key]).shape) for rule in mapping.rules}
    problems = _problems(variables, scoped, expected, mapping.unused)
    if problems:
        raise ConversionError(
            f"the variables of {source} do not match the BigBiGAN generator: " + "; ".join(problems)
        )
    state = {}
    for rule in mapping.rules:
        value = torch.from_numpy(np.asarray(variables[scoped[rule.source]], dtype=np.float32))
        state[rule.key] = rule.layout.to_torch(value).contiguous()
    return state


def convert_file(h5_path: str | Path, out_path: str | Path, config: dict | None = None) -> int:
    """Convert the variables file `h5_path` and save the state dict to `out_path`; returns its size."""
    with open_variables(h5_path) as variables:
        state = convert(variables, config, source=str(h5_path))
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, out_path)
    return len(state)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--h5", required=True, help="variables file written by tf_tools.tfhub_to_h5")
    parser.add_argument("--out", required=True, help="state dict to write (BigGAN/weights/BigBiGAN_x1.pth)")
    args = parser.parse_args(argv)
    count = convert_file(args.h5, args.out)
    print(f"wrote {count} tensors (moving averages of the weights) to {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
