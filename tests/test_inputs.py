"""Embeddings files (`--z`): what is read, and the message for each way a file can be wrong."""

import numpy as np
import pytest
import torch

from utils.errors import InputError
from utils.inputs import EMBEDDINGS_HINT, load_embeddings
from utils.weights import WEB_PAGE_REASON, WeightsError


def test_npy_and_pt_matrices_are_read_as_saved(tmp_path):
    zs = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.save(tmp_path / "z.npy", zs)
    torch.save(torch.from_numpy(zs), tmp_path / "z.pt")
    assert torch.equal(load_embeddings(tmp_path / "z.npy", 6), torch.from_numpy(zs))
    assert torch.equal(load_embeddings(tmp_path / "z.pt", 6), torch.from_numpy(zs))


def test_a_web_page_saved_as_npy_is_named(tmp_path):
    path = tmp_path / "z.npy"
    path.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    with pytest.raises(InputError) as error:
        load_embeddings(path, 6)
    assert str(error.value) == f"--z {path} cannot be read: {WEB_PAGE_REASON}; {EMBEDDINGS_HINT}"


def test_a_pickled_npy_is_refused_without_running_it(tmp_path):
    path = tmp_path / "z.npy"
    np.save(path, np.array([{"rows": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError) as error:
        load_embeddings(path, 6)
    assert str(error.value).startswith(
        f"--z {path} is not a readable .npy array (Object arrays cannot be loaded"
    )
    assert str(error.value).endswith(f"); {EMBEDDINGS_HINT}")


def test_a_damaged_pt_file_is_named_as_an_embeddings_file(tmp_path):
    path = tmp_path / "z.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError) as error:
        load_embeddings(path, 6)
    assert str(error.value).startswith(f"embeddings file {path} cannot be read: ")
    assert str(error.value).endswith(f"; {EMBEDDINGS_HINT}")
