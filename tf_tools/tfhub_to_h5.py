"""Step 1 of the conversion (TensorFlow 2; no PyTorch, no `tensorflow_hub`): module variables -> HDF5.

    python -m tf_tools.tfhub_to_h5 --module tfhub/bigbigan-resnet50 --out tfhub/bigbigan-resnet50.h5

Reads the checkpoint of a downloaded and extracted TF-Hub module with `tf.train.load_checkpoint`, so
no graph is built and `hub.Module` is not needed, and writes every variable (encoder and
discriminator included) to HDF5 as `tf_tools.h5_variables` describes.
"""

import argparse
from pathlib import Path

import tensorflow as tf

from tf_tools.h5_variables import write_variables
from tf_tools.tfhub_module import checkpoint_prefix
from utils.cli import run_cli
from utils.errors import InputError


def dump_module(module_dir: str | Path, out_path: str | Path) -> int:
    """Write the variables of the module in `module_dir` to `out_path`; returns how many."""
    prefix = checkpoint_prefix(module_dir)
    try:
        reader = tf.train.load_checkpoint(str(prefix))
    except tf.errors.OpError as error:
        raise InputError(f"the checkpoint {prefix} cannot be read: {error.message}") from error
    names = sorted(reader.get_variable_to_shape_map())
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    return write_variables(out_path, ((name, reader.get_tensor(name)) for name in names))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", required=True, help="extracted module folder (holds variables/)")
    parser.add_argument("--out", required=True, help="HDF5 file to write, e.g. tfhub/bigbigan-resnet50.h5")
    args = parser.parse_args(argv)
    count = dump_module(args.module, args.out)
    print(f"wrote {count} variables of {args.module} to {args.out}")


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
