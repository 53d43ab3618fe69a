"""utils/weights.py: which files load, and the exact reason given for each that does not."""

import pickle

import pytest
import torch
from torch import nn

from utils.weights import (
    WeightsError,
    as_state_dict,
    file_head,
    load_state_dict_strictly,
    load_torch_file,
    read_state_dict,
)

HINT = "run download_all.sh"


def reason(path) -> str:
    """What `load_torch_file` says about `path`, between the path and the hint."""
    with pytest.raises(WeightsError) as error:
        load_torch_file(path, HINT, what="test file")
    message = str(error.value)
    prefix, suffix = f"test file {path} cannot be read: ", f"; {HINT}"
    assert message.startswith(prefix) and message.endswith(suffix)
    return message[len(prefix) : -len(suffix)]


def test_file_head_reads_the_first_bytes_only(tmp_path):
    (tmp_path / "f").write_bytes(bytes(range(100)))
    assert file_head(tmp_path / "f", 4) == bytes(range(4))
    assert file_head(tmp_path / "f") == bytes(range(64))


def test_empty_and_foreign_files_are_named_with_their_first_bytes(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    assert reason(tmp_path / "empty.pt") == "it is empty"
    (tmp_path / "text.pt").write_bytes(b"0123456789abcdefGHIJ")
    assert (
        reason(tmp_path / "text.pt")
        == "it starts with b'0123456789abcdef', not with the header torch.save writes"
    )


class NotATensor:
    pass


def test_a_pickle_of_objects_is_refused_with_the_last_line_of_torchs_reason(tmp_path):
    path = tmp_path / "objects.pt"
    with open(path, "wb") as file:
        pickle.dump({"w": NotATensor()}, file)
    with pytest.raises(pickle.UnpicklingError) as raised:
        torch.load(path, weights_only=True)
    last_line = str(raised.value).strip().splitlines()[-1]
    assert len(str(raised.value).strip().splitlines()) > 2  # so that the last line is a choice
    assert reason(path) == (
        "it holds pickled objects other than tensors, which weights-only loading refuses so that "
        f"no code from the file runs ({last_line})"
    )


def test_a_damaged_file_is_named_with_the_first_line_of_torchs_error(tmp_path, monkeypatch):
    path = tmp_path / "cut.pt"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(Exception) as raised:
        torch.load(path, weights_only=True)
    first_line = str(raised.value).strip().splitlines()[0]
    assert reason(path) == f"torch.load failed with {type(raised.value).__name__}: {first_line}"

    def fail_silently(*args, **kwargs):
        raise EOFError()

    monkeypatch.setattr(torch, "load", fail_silently)
    assert reason(path) == "torch.load failed with EOFError: no details"


@pytest.mark.parametrize("loaded, name", [([torch.ones(1)], "list"), ({"w": 1.0}, "dict of a float")])
def test_only_a_dict_of_tensors_is_a_state_dict(tmp_path, loaded, name):
    torch.save(loaded, tmp_path / "f.pt")
    with pytest.raises(WeightsError) as error:
        read_state_dict(tmp_path / "f.pt", HINT)
    assert str(error.value) == f"{tmp_path / 'f.pt'} does not hold a state dict (a dict of tensors)"
    assert as_state_dict({"w": torch.ones(1)}, "f") == {"w": torch.ones(1)}


def test_every_mismatch_is_listed_in_one_message():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = {
        "0.weight": torch.zeros(3, 2),
        "0.bias": torch.zeros(1),
        "x": torch.zeros(1),
        "y": torch.zeros(1),
    }
    with pytest.raises(WeightsError) as error:
        load_state_dict_strictly(model, state, "file.pt")
    assert str(error.value) == (
        "file.pt does not match Sequential: missing (2): 1.bias, 1.weight; unexpected (2): x, y; "
        "wrong shape (1): 0.bias: file [1] vs model [3]"
    )


def test_a_one_element_tensor_fits_a_scalar_only():
    class Gamma(nn.Module):
        def __init__(self):
            super().__init__()
            self.gamma = nn.Parameter(torch.tensor(0.0))
            self.beta = nn.Parameter(torch.zeros(3))

    model = Gamma()
    assert load_state_dict_strictly(model, {"gamma": torch.tensor([2.0]), "beta": torch.ones(3)}, "f") == []
    assert model.gamma.item() == 2.0 and model.beta.tolist() == [1.0] * 3
    with pytest.raises(WeightsError, match=r"wrong shape \(1\): beta: file \[1\] vs model \[3\]"):
        load_state_dict_strictly(model, {"gamma": torch.tensor(1.0), "beta": torch.ones(1)}, "f")


def test_a_missing_file_is_a_weights_file_with_the_hint_by_default(tmp_path):
    with pytest.raises(WeightsError) as error:
        load_torch_file(tmp_path / "absent.pth", HINT)
    assert str(error.value) == f"weights file {tmp_path / 'absent.pth'} does not exist: {HINT}"


def test_a_refused_pickle_without_torchs_reason_shows_empty_parentheses(tmp_path, monkeypatch):
    path = tmp_path / "objects.pt"
    path.write_bytes(b"PK\x03\x04 anything")

    def refuse(*args, **kwargs):
        raise pickle.UnpicklingError()

    monkeypatch.setattr(torch, "load", refuse)
    assert reason(path) == (
        "it holds pickled objects other than tensors, which weights-only loading refuses so that "
        "no code from the file runs ()"
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_every_weights_loader_refuses_non_finite_tensors_naming_file_and_tensor(tmp_path, bad):
    """U-Net (a state dict and a checkpoint), generator, direction and embeddings."""
    from BigGAN.gan_load import Generator, make_big_gan, make_biggan_config
    from UNet.unet_load import load_unet
    from UNet.unet_model import UNet
    from utils.errors import InputError
    from utils.inputs import load_direction, load_embeddings

    unet = UNet(base_width=4).state_dict()
    unet["up2.conv.double_conv.0.weight"][0, 0, 0, 0] = bad
    torch.save(unet, tmp_path / "unet.pth")
    torch.save({"model": unet, "step": 3}, tmp_path / "checkpoint.pth")
    for name in ("unet.pth", "checkpoint.pth"):
        with pytest.raises(
            WeightsError,
            match=rf"{name} holds NaN or infinite values in 1 tensor\(s\): "
            r"up2.conv.double_conv.0.weight; the file is damaged",
        ):
            load_unet(tmp_path / name, "cpu")
    config = {**make_biggan_config(32), "G_ch": 4}
    generator = Generator(**config).state_dict()
    generator["linear.bias"][0] = bad
    torch.save(generator, tmp_path / "G.pth")
    with pytest.raises(
        WeightsError, match=r"G.pth holds NaN or infinite values in 1 tensor\(s\): linear.bias"
    ):
        make_big_gan(tmp_path / "G.pth", config=config, device="cpu")
    torch.save(torch.tensor([1.0, bad, 0.0]), tmp_path / "d.pth")
    with pytest.raises(InputError, match="d.pth has non-finite"):
        load_direction(tmp_path / "d.pth", 3)
    torch.save(torch.tensor([[1.0, 2.0], [bad, 0.0]]), tmp_path / "z.pt")
    with pytest.raises(InputError, match=r"z.pt: 1 of 2 rows have NaN or infinite values"):
        load_embeddings(tmp_path / "z.pt", 2)


def test_segment_py_with_nan_weights_writes_nothing_and_names_the_tensor(tmp_path):
    """The reported case: NaN in one tensor of the U-Net, and segment.py wrote a mask for every image."""
    import numpy as np
    from PIL import Image

    import segment
    from UNet.unet_model import UNet
    from utils.errors import UserError

    state = UNet(base_width=4).state_dict()
    state["outc.conv.weight"][0] = float("nan")
    torch.save(state, tmp_path / "unet.pth")
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    arguments = ["--weights", str(tmp_path / "unet.pth"), "--images", str(tmp_path / "images")]
    with pytest.raises(
        UserError, match="unet.pth holds NaN or infinite values in 1 tensor.*outc.conv.weight"
    ):
        segment.main([*arguments, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
