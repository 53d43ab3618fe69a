"""TF variables in an HDF5 file: one dataset per variable, named by its TF name plus `:0`.

The `:0` suffix (TF's name of the variable's value, as in the original work's dump) keeps `w` and
`w/ema_0.9999` apart: without it `w` would have to be a dataset and a group at once.
"""

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from utils.errors import InputError, MissingInputError

VALUE_SUFFIX = ":0"


def write_variables(path: str | Path, variables: Iterable[tuple[str, np.ndarray]]) -> int:
    """Write (TF name, value) pairs to `path` through a temporary file; returns how many."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    with h5py.File(tmp, "w") as file:
        for name, value in variables:
            file.create_dataset(name + VALUE_SUFFIX, data=value)
            count += 1
    os.replace(tmp, path)
    return count


@contextmanager
def open_variables(path: str | Path) -> Iterator[Mapping[str, h5py.Dataset]]:
    """The datasets of `path` by TF name (`:0` removed), read only when indexed."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"variables file {path} does not exist: write it with tf_tools.tfhub_to_h5")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"variables file {path} is not an HDF5 file: {error}") from error
    with file:
        datasets = {}

        def collect(name: str, item) -> None:
            if isinstance(item, h5py.Dataset):
                datasets[name.removesuffix(VALUE_SUFFIX)] = item

        file.visititems(collect)
        yield datasets
