"""The background-direction search: its parts, its result's format, and a run on the full config."""

import json

import pytest
import torch
from torch import nn

import find_direction
from BigGAN.gan_load import UnconditionalBigGAN, make_biggan_config
from BigGAN.model.BigGAN import Generator
from demo.assets import DEMO_GENERATOR_CONFIG
from direction_search import (
    BestOfAffineMaps,
    DirectionSearchConfig,
    TwoMapFitConfig,
    centre_weight,
    frozen,
    gray,
    rate_direction,
    sobel_magnitude,
    two_map_fit_error,
)
from direction_search import find_direction as search
from tests.weight_fill import fill_module


def demo_generator(seed: int = 0) -> UnconditionalBigGAN:
    return UnconditionalBigGAN(fill_module(Generator(**DEMO_GENERATOR_CONFIG), seed))


def test_sobel_is_normalised_to_intensity_steps():
    flat = torch.full((1, 8, 8), 0.7)
    assert sobel_magnitude(flat).max() < 1e-3
    step = torch.zeros(1, 8, 8)
    step[..., 4:] = 1.0
    assert sobel_magnitude(step).max().item() == pytest.approx(0.5, abs=1e-3)


def test_centre_weight_rewards_bright_centres_and_dark_borders():
    weight = centre_weight(33, 33, 0.45)
    assert weight[16, 16].item() == pytest.approx(-0.45)
    assert weight[0, 0].item() == pytest.approx(0.55)
    assert weight[0, 16] > 0 > weight[12, 16]


class ToyGenerator(nn.Module):
    """Images from latents, with a shift that acts as one of two affine colour maps per pixel
    (`two_maps`), or that scales each image's colours by its own latent-dependent factors."""

    dim_z = 6

    def __init__(self, two_maps: bool):
        super().__init__()
        self.two_maps = two_maps
        self.anchor = nn.Parameter(torch.zeros(()))
        ramp = torch.linspace(-1, 1, 16)
        self.register_buffer("ramp", ramp.view(1, 1, 1, 16) * ramp.view(1, 1, 16, 1))

    def forward(self, z):
        return torch.tanh(z[:, :3, None, None] * (0.5 + self.ramp)) * 0.8

    def gen_shifted(self, z, shift):
        images = self.forward(z)
        if not self.two_maps:
            return (images * torch.tanh(z[:, 3:6, None, None])).clamp(-1, 1)
        left = torch.zeros_like(images, dtype=torch.bool)
        left[..., :8] = True
        return torch.where(left, 0.6 * images + 0.2, 0.7 * images - 0.25)


def test_two_map_fit_error_is_small_only_for_a_two_map_shift():
    config = TwoMapFitConfig(train_steps=300)
    two_maps = two_map_fit_error(ToyGenerator(two_maps=True), torch.zeros(6), config)
    per_image = two_map_fit_error(ToyGenerator(two_maps=False), torch.zeros(6), config)
    assert two_maps < 0.05
    assert per_image > 3 * two_maps


def test_best_of_affine_maps_picks_the_closer_map_per_pixel():
    maps = BestOfAffineMaps(2)
    with torch.no_grad():
        maps.weight.copy_(torch.stack([torch.eye(3), -torch.eye(3)]))
        maps.bias.zero_()
    colours = torch.tensor([[0.5, 0.5, 0.5], [0.2, -0.1, 0.3]])
    fitted, which = maps(colours, torch.stack([colours[0], -colours[1]]))
    assert which.tolist() == [0, 1]
    torch.testing.assert_close(fitted, torch.stack([colours[0], -colours[1]]))


def test_search_gives_a_unit_direction_and_leaves_the_generator_as_it_was():
    G = demo_generator().train()
    direction = search(G, DirectionSearchConfig(steps=3, batch_size=4), progress=False)
    assert direction.shape == (G.dim_z,) and direction.dtype == torch.float32
    assert direction.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert G.training and all(p.requires_grad for p in G.parameters())
    assert all(p.grad is None for p in G.parameters())
    again = search(G, DirectionSearchConfig(steps=3, batch_size=4), progress=False)
    torch.testing.assert_close(again, direction)


def test_search_moves_towards_darker_borders():
    G = demo_generator()
    config = DirectionSearchConfig(steps=40, batch_size=8, seed=3)
    direction = search(G, config, progress=False)
    z = torch.randn(16, G.dim_z, generator=torch.Generator().manual_seed(5))
    weight = centre_weight(32, 32, config.centre_offset)
    with torch.no_grad(), frozen(G):

        def objective(shift: torch.Tensor) -> float:
            return (gray(G.gen_shifted(z, shift)) * weight).mean().item()

        assert objective(2 * direction) < objective(torch.zeros_like(direction))


def test_rating_reports_shares_in_range():
    G = demo_generator()
    direction = torch.nn.functional.normalize(torch.randn(G.dim_z), dim=0)
    rating = rate_direction(G, direction, samples=8, fit=TwoMapFitConfig(train_steps=3, test_batches=1))
    assert set(rating) == {"two_map_fit_error", "mask_coverage", "mask_border_share", "mask_centre_share"}
    assert all(0 <= value <= 1 for value in rating.values())


def test_cli_saves_a_weights_only_tensor(tmp_path, capsys):
    weights = tmp_path / "g.pth"
    torch.save(demo_generator().big_gan.state_dict(), weights)
    config_path = tmp_path / "g.json"
    config_path.write_text(json.dumps(DEMO_GENERATOR_CONFIG))
    out = tmp_path / "d.pth"
    find_direction.main(
        ["--gan_weights", str(weights), "--gan_config", str(config_path), "--out", str(out)]
        + ["--steps", "2", "--batch_size", "2", "--device", "cpu", "--preview", str(tmp_path / "p.png")]
    )
    direction = torch.load(out, weights_only=True)
    assert direction.shape == (120,) and direction.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert "two_map_fit_error=" in capsys.readouterr().out
    assert (tmp_path / "p.png").exists()


def test_cli_rejects_an_unreadable_config(tmp_path, capsys):
    with pytest.raises(SystemExit):
        find_direction.main(
            ["--gan_weights", str(tmp_path / "g.pth"), "--gan_config", str(tmp_path / "missing.json")]
            + ["--out", str(tmp_path / "d.pth")]
        )
    error = capsys.readouterr().err
    assert "--gan_config" in error and "missing.json" in error


def test_search_runs_on_the_full_bigbigan_config():
    G = UnconditionalBigGAN(fill_module(Generator(**make_biggan_config(128))))
    direction = search(G, DirectionSearchConfig(steps=1, batch_size=2), progress=False)
    assert direction.shape == (120,)
    assert direction.norm().item() == pytest.approx(1.0, abs=1e-5)
