"""Embeddings files (`--z`): what is read, and the message for each way a file can be wrong."""

import numpy as np
import pytest
import torch

from utils.errors import InputError, UserError
from utils.inputs import DIRECTION_HINT, EMBEDDINGS_HINT, load_direction, load_embeddings
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


@pytest.mark.parametrize(
    "load, what, hint",
    [
        (lambda path: load_embeddings(path, 6), "embeddings file", EMBEDDINGS_HINT),
        (lambda path: load_direction(path, 4), "direction file", DIRECTION_HINT),
    ],
)
def test_a_damaged_pt_file_is_named_as_what_it_should_be(tmp_path, load, what, hint):
    path = tmp_path / "file.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError) as error:
        load(path)
    assert str(error.value).startswith(f"{what} {path} cannot be read: ")
    assert str(error.value).endswith(f"; {hint}")


def load_error(load, path, value, shown_as: str) -> str:
    """The message `load(path)` raises for `value` saved at `path` (None: no file), the path as `shown_as`."""
    if value is not None:
        torch.save(value, path)
    with pytest.raises(UserError) as error:
        load(path)
    return str(error.value).replace(str(path), shown_as)


def test_embeddings_that_are_missing_empty_or_of_the_wrong_shape_or_type_are_named(tmp_path):
    def message(value, name="z.pt"):
        return load_error(lambda path: load_embeddings(path, 6), tmp_path / name, value, "Z")

    assert message(None, "absent.pt") == f"--z Z does not exist: {EMBEDDINGS_HINT}"
    assert message(torch.zeros(4, 5)) == "--z Z must hold a float matrix [N, 6], got [4, 5]"
    assert message(torch.zeros(4, 6, 1)) == "--z Z must hold a float matrix [N, 6], got [4, 6, 1]"
    assert message(torch.zeros(4, 6, dtype=torch.long)) == "--z Z must hold a float matrix [N, 6], got [4, 6]"
    assert message({"zs": torch.zeros(4, 6)}) == "--z Z must hold a float matrix [N, 6], got dict"
    assert message(torch.zeros(0, 6)) == f"--z Z holds no rows: {EMBEDDINGS_HINT}"
    torch.save(torch.zeros(1, 6, dtype=torch.float64), tmp_path / "one.pt")
    assert torch.equal(load_embeddings(tmp_path / "one.pt", 6), torch.zeros(1, 6))  # float32


def direction_error(tmp_path, value, name="direction.pt") -> str:
    return load_error(lambda path: load_direction(path, 4), tmp_path / name, value, "D")


def test_a_direction_is_read_as_a_float_vector_of_the_latent_size(tmp_path):
    torch.save(torch.tensor([[1.0, -2.0, 0.0, 3.0]], dtype=torch.float64), tmp_path / "d.pt")
    direction = load_direction(str(tmp_path / "d.pt"), 4)
    assert direction.dtype == torch.float32 and direction.tolist() == [1.0, -2.0, 0.0, 3.0]


def test_a_missing_misshaped_non_finite_or_zero_direction_is_named(tmp_path):
    assert (
        direction_error(tmp_path, None, "absent.pt") == f"direction file D does not exist: {DIRECTION_HINT}"
    )
    assert (
        direction_error(tmp_path, torch.ones(3))
        == "D holds [3]; --bg_direction must be a tensor of 4 elements"
    )
    assert direction_error(tmp_path, {"d": torch.ones(4)}) == (
        "D holds dict; --bg_direction must be a tensor of 4 elements"
    )
    assert direction_error(tmp_path, torch.tensor([1.0, float("nan"), 0.0, 0.0])) == (
        f"--bg_direction D has non-finite (NaN or infinite) elements: {DIRECTION_HINT}"
    )
    assert direction_error(tmp_path, torch.tensor([1.0, float("inf"), 0.0, 0.0])).endswith(
        "elements: " + DIRECTION_HINT
    )
    assert direction_error(tmp_path, torch.zeros(4)) == (
        "--bg_direction D is all zeros, so no shift would change the image"
    )


def test_rows_with_nan_or_infinite_values_are_counted_and_the_first_five_named(tmp_path):
    zs = torch.zeros(8, 6)
    zs[1, 0], zs[3, 5] = float("nan"), float("inf")
    torch.save(zs, tmp_path / "z.pt")
    with pytest.raises(InputError) as error:
        load_embeddings(tmp_path / "z.pt", 6)
    assert str(error.value) == (
        f"--z {tmp_path / 'z.pt'}: 2 of 8 rows have NaN or infinite values (rows 1, 3); "
        "remove or recompute them"
    )
    for count, listed in ((5, "rows 0, 1, 2, 3, 4)"), (6, "rows 0, 1, 2, 3, 4, ...)")):
        zs = torch.zeros(8, 6)
        zs[:count, 2] = float("-inf")
        torch.save(zs, tmp_path / "z.pt")
        with pytest.raises(InputError) as error:
            load_embeddings(tmp_path / "z.pt", 6)
        assert f": {count} of 8 rows have NaN or infinite values ({listed}; remove" in str(error.value)
