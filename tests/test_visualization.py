"""The walk along a latent direction as an animated GIF: `python -m visualization gif`."""

import numpy as np
import pytest
import torch
from PIL import Image

import visualization
from BigGAN.gan_load import Generator, UnconditionalBigGAN, make_biggan_config
from tests.weight_fill import fill_module
from utils.errors import InputError


def frames_of(path) -> list[np.ndarray]:
    with Image.open(path) as gif:
        assert gif.info["loop"] == 0
        return [np.asarray(frame.convert("RGB")) for frame in _each_frame(gif)]


def _each_frame(gif):
    for index in range(gif.n_frames):
        gif.seek(index)
        yield gif.copy()


def test_the_demo_walk_goes_out_and_back_and_its_frames_differ(tmp_path):
    out = tmp_path / "walk.gif"
    visualization.main(["gif", "--demo", "--out", str(out), "--samples", "2", "--steps", "3"])
    frames = frames_of(out)
    assert len(frames) == 4  # r = -10, 0, +10, then 0 again
    assert np.array_equal(frames[1], frames[3])
    assert not np.array_equal(frames[0], frames[2])
    assert frames[0].shape == (visualization.TILE + visualization.LABEL_FONT_SIZE + 8 + 4, 2 * 130 + 2, 3)


def test_the_frames_show_the_shifted_images():
    G = UnconditionalBigGAN(fill_module(Generator(**{**make_biggan_config(32), "G_ch": 4}), seed=1))
    direction = torch.zeros(G.dim_z)
    direction[0] = 1.0
    z = torch.randn(1, G.dim_z, generator=torch.Generator().manual_seed(0))
    frame = np.asarray(visualization.direction_walk(G, direction, z, [3.0])[0])
    expected = visualization.as_tiles(visualization.to_unit_range(G(z + 3.0 * direction)))[0]
    top = visualization.LABEL_FONT_SIZE + 8  # under the caption; one tile, unpadded
    shown = torch.tensor(frame[top : top + visualization.TILE, : visualization.TILE]).permute(2, 0, 1)
    assert (shown.float() / 255 - expected).abs().max() < 1 / 255 + 1e-6


def test_an_earlier_gif_is_kept_unless_overwrite_is_given(tmp_path):
    out = tmp_path / "walk.gif"
    out.write_bytes(b"earlier")
    with pytest.raises(InputError, match=f"{out} exists: choose another path, or pass --overwrite"):
        visualization.main(["gif", "--demo", "--out", str(out), "--steps", "2"])
    assert out.read_bytes() == b"earlier"
    visualization.main(["gif", "--demo", "--out", str(out), "--steps", "2", "--samples", "1", "--overwrite"])
    assert len(frames_of(out)) == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gif", "--out", "x.gif"], "give --gan_weights and --bg_direction"),
        (["gif", "--demo", "--out", "x.gif", "--steps", "1"], "--steps.*at least 2"),
    ],
)
def test_bad_commands_are_named(tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=message):
        visualization.main(argv)
    assert list(tmp_path.iterdir()) == []


def test_without_a_command_the_usage_is_shown(capsys):
    with pytest.raises(SystemExit) as exit_:
        visualization.main([])
    assert exit_.value.code == 2 and "python -m visualization [-h] {gif}" in capsys.readouterr().err


@pytest.mark.slow
def test_bigbigan_walks_at_128_px(tmp_path):
    """The full 128-px BigBiGAN layout (filled weights: the released file cannot be fetched here)."""
    G = fill_module(Generator(**make_biggan_config(128)))
    torch.save(G.state_dict(), tmp_path / "BigBiGAN_x1.pth")
    torch.save(torch.randn(G.dim_z), tmp_path / "bg_direction.pth")
    out = tmp_path / "walk.gif"
    weights, direction = str(tmp_path / "BigBiGAN_x1.pth"), str(tmp_path / "bg_direction.pth")
    argv = ["gif", "--gan_weights", weights, "--bg_direction", direction, "--out", str(out)]
    visualization.main([*argv, "--samples", "1", "--steps", "2", "--device", "cpu"])
    # one sample: make_grid leaves a single tile unpadded
    assert [frame.shape for frame in frames_of(out)] == [
        (128 + visualization.LABEL_FONT_SIZE + 8, 128, 3)
    ] * 2
