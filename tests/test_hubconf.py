"""torch.hub entry points (hubconf.py), loaded with `source="local"` and no internet: local files,
downloads through download_all.sh from a local mirror, and the errors when neither works."""

from pathlib import Path

import pytest
import torch

from demo.assets import DEMO_UNET_PATH
from tests.fixture_files import read_keys_file
from tests.test_download import IDS, torch_bytes
from UNet.unet_load import load_unet
from UNet.unet_model import UNet

REPO = Path(__file__).resolve().parents[1]


def hub(entry: str, **kwargs):
    return torch.hub.load(str(REPO), entry, source="local", trust_repo=True, **kwargs)


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty BGW_ROOT, so that nothing is read from or written to the repository's folders."""
    monkeypatch.setenv("BGW_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    return tmp_path / "root"


def test_the_demo_unet_and_generator_need_nothing_downloaded(root):
    model = hub("unet", name="demo", device="cpu")
    assert isinstance(model, UNet) and not model.training
    image = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(model(image), load_unet(DEMO_UNET_PATH, "cpu").eval()(image))
    generator = hub("demo_generator", device="cpu")
    assert not generator.training and generator(torch.randn(2, 120)).shape == (2, 3, 32, 32)


def test_a_unet_from_a_path(root, tmp_path):
    torch.save(UNet(base_width=4).state_dict(), tmp_path / "mine.pth")
    assert hub("unet", name=str(tmp_path / "mine.pth"), device="cpu").inc.double_conv[0].out_channels == 4


def test_missing_files_are_fetched_and_checked_by_download_all_sh(root, tmp_path, serve, monkeypatch):
    mirror = tmp_path / "mirror"
    released = UNet()  # the released layout: width 64, bilinear
    for name, content in {
        "u_net_flowers.pth": torch_bytes(released.state_dict(), tmp_path),
        "bg_direction.pth": torch_bytes(torch.ones(120), tmp_path),
    }.items():
        (mirror / IDS[name]).mkdir(parents=True)
        (mirror / IDS[name] / name).write_bytes(content)
    monkeypatch.setenv("BGW_MIRROR", serve(mirror))
    model = hub("unet", name="flowers", device="cpu")
    assert (root / "pretrained" / "u_net_flowers.pth").is_file() and not model.training
    assert torch.equal(model.outc.conv.weight, released.outc.conv.weight)
    assert torch.equal(hub("bg_direction"), torch.ones(120))
    assert (root / "BigGAN" / "weights" / "bg_direction.pth").is_file()


def test_an_unreachable_file_is_named_with_the_script_s_reason(root, monkeypatch):
    monkeypatch.setenv("BGW_MIRROR", "http://127.0.0.1:9")
    with pytest.raises(FileNotFoundError, match=r"u_net_imagenet.pth is missing and `bash .*download_all.sh"):
        hub("unet", name="imagenet", device="cpu")
    assert not (root / "pretrained" / "u_net_imagenet.pth").exists()


def test_a_bad_download_is_refused_and_not_kept(root, tmp_path, serve, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / IDS["bg_direction.pth"]).mkdir(parents=True)
    (mirror / IDS["bg_direction.pth"] / "bg_direction.pth").write_bytes(
        b"<!DOCTYPE html><html>Sign in</html>"
    )
    monkeypatch.setenv("BGW_MIRROR", serve(mirror))
    with pytest.raises(FileNotFoundError, match=r"(?s)bg_direction.pth is missing.*\nerror: .*HTML page"):
        hub("bg_direction")
    assert not (root / "BigGAN" / "weights" / "bg_direction.pth").exists()


@pytest.mark.slow
def test_bigbigan_loads_the_local_file_of_the_released_layout(root):
    """A zero-filled state dict of the released key layout (the real file is 282 MB of weights)."""
    state = {key: torch.zeros(shape) for key, shape, _ in read_keys_file("biggan128_keys.txt")}
    (root / "BigGAN" / "weights").mkdir(parents=True)
    torch.save(state, root / "BigGAN" / "weights" / "BigBiGAN_x1.pth")
    generator = hub("bigbigan", device="cpu")
    assert not generator.training and generator.dim_z == 120
