"""The background-direction search: its parts, its result's format, and a run on the full config."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import bg_direction
import find_direction
from bg_direction import (
    KORNIA_SOBEL_EPS,
    MELAS_KYRIAZI,
    BestOfAffineMaps,
    DirectionSearchConfig,
    DirectionSearchError,
    TwoMapFitConfig,
    adam_step,
    centre_weight,
    check_direction,
    check_loss,
    direction_loss,
    draw_latents,
    draw_radii,
    frozen,
    gray,
    objective_parts,
    outside_circle_weight,
    rate_direction,
    shift_dim,
    shift_masks,
    sobel_magnitude,
    two_map_fit_error,
)
from bg_direction import find_direction as search
from BigGAN.gan_load import UnconditionalBigGAN, make_biggan_config
from BigGAN.model.BigGAN import Generator
from demo.assets import DEMO_GENERATOR_CONFIG
from gan_mask_gen import rgb2gray
from tests.weight_fill import fill_module
from utils.cli import run_cli
from utils.errors import InputError


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


def test_affine_maps_start_near_the_identity_as_scaled_linear_layers():
    """Weights I + 0.01 U(-b, b), biases U(-b, b), b = 1/sqrt(3), drawn from the given generator."""
    bound = 3**-0.5
    maps = BestOfAffineMaps(4000, torch.Generator().manual_seed(0))
    noise = (maps.weight.detach() - torch.eye(3)) / 0.01
    for values in (noise, maps.bias.detach()):
        assert values.abs().max() <= bound + 1e-4 and values.abs().max() > 0.99 * bound
        assert abs(values.mean().item()) < 0.01
    assert BestOfAffineMaps().weight.shape == (2, 3, 3) and BestOfAffineMaps().bias.shape == (2, 3)
    again = BestOfAffineMaps(2, torch.Generator().manual_seed(0))
    assert torch.equal(again.weight, BestOfAffineMaps(2, torch.Generator().manual_seed(0)).weight)
    assert not torch.equal(again.weight[0], again.weight[1]) and not torch.equal(again.bias[0], again.bias[1])


def test_two_map_fit_error_is_reproducible_from_its_seed():
    toy = ToyGenerator(two_maps=False)
    error = two_map_fit_error(toy, torch.zeros(6), TwoMapFitConfig(train_steps=20))
    assert error == pytest.approx(0.6260052502155304, rel=1e-5)
    assert error == two_map_fit_error(toy, torch.zeros(6), TwoMapFitConfig(train_steps=20))
    assert two_map_fit_error(toy, torch.zeros(6), TwoMapFitConfig(train_steps=20, seed=2)) == pytest.approx(
        0.5812803745269776, rel=1e-5
    )


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


@pytest.fixture
def demo_flags(tmp_path) -> list[str]:
    """--gan_weights/--gan_config of a small demo generator on the CPU, and a short search."""
    weights = tmp_path / "g.pth"
    torch.save(demo_generator().big_gan.state_dict(), weights)
    config_path = tmp_path / "g.json"
    config_path.write_text(json.dumps(DEMO_GENERATOR_CONFIG))
    files = ["--gan_weights", str(weights), "--gan_config", str(config_path)]
    return files + ["--device", "cpu", "--steps", "2", "--batch_size", "2"]


def test_cli_saves_a_weights_only_tensor(tmp_path, capsys, demo_flags):
    out = tmp_path / "d.pth"
    find_direction.main(
        demo_flags + ["--out", str(out), "--preview", str(tmp_path / "p.png"), "--rating_steps", "5"]
    )
    direction = torch.load(out, weights_only=True)
    assert direction.shape == (120,) and direction.norm().item() == pytest.approx(1.0, abs=1e-5)
    assert "two_map_fit_error=" in capsys.readouterr().out
    assert (tmp_path / "p.png").exists()


def error_lines(capsys) -> list[str]:
    """The `error: ...` lines on stderr (the progress bar may also write there)."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]


def test_cli_checks_every_flag_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "d.pth"
    flags = ["--gan_weights", str(tmp_path / "missing.pth"), "--out", str(out)]
    bad = ["--steps", "0", "--lr", "-1", "--radius_std", "nan", "--rating_steps", "0", "--threads", "0"]
    assert run_cli(find_direction.main, flags + bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --steps 0: ")
    for flag in ("--lr -1.0: ", "--radius_std nan: ", "--rating_steps 0: ", "--threads 0: "):
        assert flag in err
    assert "missing.pth" not in err and not out.exists()


@pytest.mark.parametrize("lr", ["inf", "nan", "0"])
def test_cli_refuses_a_learning_rate_that_cannot_work(tmp_path, capsys, demo_flags, lr):
    out = tmp_path / "d.pth"
    assert run_cli(find_direction.main, demo_flags + ["--out", str(out), "--lr", lr]) == 1
    assert error_lines(capsys) == [f"error: --lr {float(lr)}: must be a finite number above 0"]
    assert not out.exists()


@pytest.mark.parametrize("lr", ["1e20", "1e38"])
def test_cli_diverging_search_fails_and_keeps_the_old_file(tmp_path, capsys, demo_flags, lr):
    out = tmp_path / "d.pth"
    out.write_bytes(b"previous direction")
    # --overwrite: the earlier file may be replaced, yet a search that diverges writes nothing
    assert run_cli(find_direction.main, demo_flags + ["--out", str(out), "--lr", lr, "--overwrite"]) == 1
    [line] = error_lines(capsys)
    assert "at step 1 of 2" in line and f"--lr {float(lr)} is probably too high" in line
    assert out.read_bytes() == b"previous direction"
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("d.pth")] == ["d.pth"]


def test_cli_reports_missing_weights_as_a_user_error(tmp_path, capsys):
    out = tmp_path / "d.pth"
    assert run_cli(find_direction.main, ["--gan_weights", str(tmp_path / "g.pth"), "--out", str(out)]) == 1
    [line] = error_lines(capsys)
    assert "g.pth" in line and not out.exists()


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


class ScriptedGenerator(nn.Module):
    """Images that depend on z + shift (or not at all, `uses_shift` False); from call `finite_calls` + 1
    on, gen_shifted returns NaN images."""

    dim_z = 4

    def __init__(self, finite_calls: int = 10**6, uses_shift: bool = True):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.finite_calls, self.uses_shift, self.calls = finite_calls, uses_shift, 0
        ramp = torch.linspace(-1, 1, 8)
        self.register_buffer("ramp", ramp.view(1, 1, 1, 8) * ramp.view(1, 1, 8, 1))

    def forward(self, z):
        return torch.tanh(z[:, :3, None, None] * (1 + self.ramp) + z[:, 3:, None, None])

    def gen_shifted(self, z, shift):
        self.calls += 1
        images = self.forward(z + shift if self.uses_shift else z)
        return images if self.calls <= self.finite_calls else images * float("nan")


def test_search_stops_at_the_first_non_finite_loss():
    G = ScriptedGenerator(finite_calls=2)
    with pytest.raises(DirectionSearchError, match=r"loss became nan at step 3 of 50: --lr 0.005"):
        search(G, DirectionSearchConfig(steps=50, batch_size=2), progress=False)
    assert G.calls == 3


def test_search_blames_the_generator_when_the_first_loss_is_not_finite():
    with pytest.raises(DirectionSearchError, match="step 1, before any update"):
        search(
            ScriptedGenerator(finite_calls=0), DirectionSearchConfig(steps=5, batch_size=2), progress=False
        )


@pytest.mark.parametrize("objective", ["variant", MELAS_KYRIAZI])
def test_search_refuses_a_generator_that_ignores_the_shift(objective):
    config = DirectionSearchConfig(steps=3, batch_size=2, objective=objective)
    with pytest.raises(DirectionSearchError, match="do not depend on the shift"):
        search(ScriptedGenerator(uses_shift=False), config, progress=False)


class ZeroGradientGenerator(ScriptedGenerator):
    def gen_shifted(self, z, shift):
        return self.forward(z) + 0 * shift.sum()


def test_search_refuses_a_zero_gradient():
    with pytest.raises(DirectionSearchError, match=r"zero gradient in all 3 steps"):
        search(ZeroGradientGenerator(), DirectionSearchConfig(steps=3, batch_size=2), progress=False)


def test_search_checks_its_config():
    with pytest.raises(InputError, match=r"--radius_min 0.0: must be a finite number above 0"):
        search(demo_generator(), DirectionSearchConfig(radius_min=0.0), progress=False)


def test_default_search_is_unchanged():
    """First elements of the direction the search gave before the published objective was added."""
    direction = search(demo_generator(), DirectionSearchConfig(steps=3, batch_size=4), progress=False)
    expected = [-0.11724833, -0.10373471, -0.03487734, -0.03641038, 0.09227589, 0.07765082]
    torch.testing.assert_close(direction[:6], torch.tensor(expected), rtol=0, atol=1e-5)


def test_published_brightness_weight_is_four_times_the_centred_distance():
    root2 = 2**0.5
    distance = torch.tensor([[root2, 1, root2], [1, 0, 1], [root2, 1, root2]])
    expected = 4 * (distance - (4 * root2 + 4) / 9)
    torch.testing.assert_close(outside_circle_weight(3, 3), expected)
    parts = objective_parts(DirectionSearchConfig(objective=MELAS_KYRIAZI), 3, 3)
    assert parts.intensity is rgb2gray and parts.sobel_eps == KORNIA_SOBEL_EPS == 1e-6
    torch.testing.assert_close(parts.weight, expected)


def test_published_radii_are_drawn_per_latent_coordinate():
    config = DirectionSearchConfig(batch_size=3, objective=MELAS_KYRIAZI, radius_std=3.0)
    radii = draw_radii(config, 5, torch.Generator().manual_seed(7))
    normal = torch.randn(3, 5, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(radii, (normal * 3.0 + 2.0).clamp(min=0.1))
    assert (radii == 0.1).any()  # the clip at radius_min
    per_image = draw_radii(DirectionSearchConfig(batch_size=3), 5, torch.Generator().manual_seed(7))
    assert per_image.shape == (3, 1)


def test_published_objective_gives_a_finite_unit_direction():
    G = demo_generator()
    config = DirectionSearchConfig(steps=3, batch_size=4, objective=MELAS_KYRIAZI)
    direction = search(G, config, progress=False)
    assert direction.shape == (G.dim_z,) and torch.isfinite(direction).all()
    assert direction.norm().item() == pytest.approx(1.0, abs=1e-5)
    variant = search(G, DirectionSearchConfig(steps=3, batch_size=4), progress=False)
    assert not torch.allclose(direction, variant)


def published_search(G, config: DirectionSearchConfig) -> torch.Tensor:
    """Melas-Kyriazi et al.'s optimisation written out (their main.py, l. 103-125): the direction starts
    as 0.1 N(0, I), enters the shifts as d / |d| and is renormalised after each Adam step."""
    rng = torch.Generator().manual_seed(config.seed)
    dim = shift_dim(G)
    direction = (0.1 * torch.randn(dim, generator=rng)).requires_grad_(True)
    optimizer = torch.optim.Adam([direction], lr=config.lr)
    with frozen(G):
        parts = objective_parts(config, *G(torch.zeros(1, dim)).shape[-2:])
        for _ in range(config.steps):
            z, radii = draw_latents(config.batch_size, dim, rng), draw_radii(config, dim, rng)
            loss = direction_loss(G, z, radii * direction / direction.norm(), parts, config)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                direction /= direction.norm()
    return direction.detach()


def test_published_search_follows_their_optimisation():
    config = DirectionSearchConfig(steps=3, batch_size=4, objective=MELAS_KYRIAZI)
    G = demo_generator()
    torch.testing.assert_close(search(G, config, progress=False), published_search(G, config))


class FlatGenerator(ScriptedGenerator):
    """Single-colour images, before and after the shift: no edges anywhere."""

    def forward(self, z):
        return z[:, :3, None, None].expand(-1, -1, 8, 8)

    def gen_shifted(self, z, shift):
        return self.forward(z + shift)


def test_published_edge_term_takes_the_same_epsilon_on_both_sides():
    """Flat images have Sobel magnitude sqrt(eps) before and after the shift: no edge change."""
    config = DirectionSearchConfig(objective=MELAS_KYRIAZI, brightness_weight=0.0)
    parts = objective_parts(config, 8, 8)
    z = torch.randn(2, 4, generator=torch.Generator().manual_seed(0))
    assert direction_loss(FlatGenerator(), z, torch.full((2, 4), 0.5), parts, config).item() == 0.0


class FirstStepShiftGenerator(ScriptedGenerator):
    """Images that depend on the shift in the first search step only; later its gradient is zero."""

    def gen_shifted(self, z, shift):
        self.calls += 1
        return self.forward(z + shift) if self.calls == 1 else self.forward(z) + 0 * shift.sum()


def test_a_gradient_in_any_step_counts_as_moved():
    direction = search(
        FirstStepShiftGenerator(), DirectionSearchConfig(steps=2, batch_size=2), progress=False
    )
    assert direction.norm().item() == pytest.approx(1.0, abs=1e-5)


class RecordingGenerator(ToyGenerator):
    """ToyGenerator that keeps every latent batch gen_shifted is called with."""

    def __init__(self):
        super().__init__(two_maps=True)
        self.seen = []

    def gen_shifted(self, z, shift):
        self.seen.append(z.clone())
        return super().gen_shifted(z, shift)


def test_rating_with_embeddings_draws_rows_and_tests_on_the_original_slice():
    zs = torch.randn(12, 6, generator=torch.Generator().manual_seed(0))
    G = RecordingGenerator()
    config = TwoMapFitConfig(train_steps=6, test_batches=2, batch_size=2)
    rate_direction(G, torch.zeros(6), samples=5, fit=config, zs=zs)
    masks, *fit_batches = G.seen
    for batch in [masks] + fit_batches:
        assert all((row == zs).all(dim=1).any() for row in batch)
    # test step i reads the batch i - test_batches: rows 2 * (6 - 2) = 8 .. 11
    torch.testing.assert_close(torch.cat(fit_batches[-2:]), zs[8:12])


def test_rating_with_too_few_embeddings_names_the_rows_it_needs():
    with pytest.raises(InputError) as error:
        two_map_fit_error(
            ToyGenerator(two_maps=True), torch.zeros(6), TwoMapFitConfig(6, 2, 2), torch.zeros(11, 6)
        )
    assert str(error.value) == (
        "the rating with --z tests on embeddings rows 8..11, as the original does for --rating_steps 6, "
        "but they must lie within the 11 rows given: use --rating_steps from 2 to 5, or more embeddings"
    )


def test_rating_shares_are_those_of_64_latents_with_seed_1_shifted_by_the_radius():
    """The masks' border (outermost rows and columns), centre (middle half of each side) and all pixels."""
    G = demo_generator()
    direction = torch.nn.functional.normalize(
        torch.randn(G.dim_z, generator=torch.Generator().manual_seed(3)), dim=0
    )
    fit = TwoMapFitConfig(train_steps=3, test_batches=1)
    rating = rate_direction(G, direction, radius=3.0, fit=fit)
    z = torch.randn(64, G.dim_z, generator=torch.Generator().manual_seed(1))
    masks = shift_masks(G, z, direction, 3.0)[2].float()
    height, width = masks.shape[-2:]
    border = torch.cat([masks[:, 0], masks[:, -1], masks[:, 1:-1, 0], masks[:, 1:-1, -1]], dim=1)
    centre = masks[:, height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    assert rating["mask_coverage"] == pytest.approx(masks.mean().item(), abs=1e-7)
    assert rating["mask_border_share"] == pytest.approx(border.mean().item(), abs=1e-7)
    assert rating["mask_centre_share"] == pytest.approx(centre.mean().item(), abs=1e-7)
    assert 0 < rating["mask_border_share"] < rating["mask_coverage"] < rating["mask_centre_share"] < 1
    assert rating["two_map_fit_error"] == two_map_fit_error(G, direction, fit)


def test_rating_fits_two_maps_at_its_own_radius_by_default(monkeypatch):
    configs = []
    monkeypatch.setattr(
        bg_direction, "two_map_fit_error", lambda G, d, config, zs: configs.append(config) or 0.5
    )
    G = demo_generator()
    assert rate_direction(G, torch.ones(G.dim_z), samples=2, radius=3.0)["two_map_fit_error"] == 0.5
    rate_direction(G, torch.ones(G.dim_z), samples=2)
    assert configs == [TwoMapFitConfig(radius=3.0), TwoMapFitConfig(radius=5.0)]


def test_cli_rates_on_embeddings(tmp_path, capsys, demo_flags):
    embeddings = tmp_path / "z.npy"
    np.save(embeddings, np.random.default_rng(0).standard_normal((20, 120)).astype(np.float32))
    out = tmp_path / "d.pth"
    find_direction.main(demo_flags + ["--out", str(out), "--z", str(embeddings), "--rating_steps", "5"])
    assert "two_map_fit_error=" in capsys.readouterr().out and out.exists()


def test_cli_checks_the_embeddings_before_searching(tmp_path, capsys, demo_flags):
    embeddings = tmp_path / "z.npy"
    np.save(embeddings, np.zeros((10, 120), dtype=np.float32))
    out = tmp_path / "d.pth"
    assert run_cli(find_direction.main, demo_flags + ["--out", str(out), "--z", str(embeddings)]) == 1
    [line] = error_lines(capsys)
    assert "rows 780..799," in line and "the 10 rows given" in line and not out.exists()


def test_gray_maps_the_generator_range_to_zero_one():
    weights = 0.2989 + 0.5870 + 0.1140  # rgb2gray's, 0.9999
    assert gray(torch.full((1, 3, 2, 2), -1.0)).flatten().tolist() == pytest.approx(
        [(1 - weights) / 2] * 4, abs=1e-7
    )
    assert gray(torch.ones(1, 3, 1, 1)).item() == pytest.approx((weights + 1) / 2, abs=1e-7)


def test_search_failures_say_what_went_wrong_and_where():
    config = DirectionSearchConfig(steps=7, lr=0.5)
    advice = f"--lr 0.5 is probably too high (default {DirectionSearchConfig.lr})"
    nan = torch.tensor(float("nan"), requires_grad=True)
    with pytest.raises(DirectionSearchError) as error:
        check_loss(1, nan, config)
    assert str(error.value) == (
        "direction search: the loss is nan at step 1, before any update: the generator's images are not "
        "finite (check --gan_weights)"
    )
    with pytest.raises(DirectionSearchError) as error:
        check_direction(3, torch.full((4,), float("inf")), config)
    assert str(error.value) == (
        "direction search: the direction overflowed (norm inf after renormalising, not 1) at step 3 of 7: "
        + advice
    )

    class Failing(torch.optim.SGD):
        def step(self, closure=None):
            raise RuntimeError("overflow")

    with pytest.raises(DirectionSearchError) as error:
        adam_step(4, Failing([torch.zeros(1, requires_grad=True)], lr=0.1), config)
    assert str(error.value) == f"direction search: the Adam update failed (overflow) at step 4 of 7: {advice}"


def test_the_shift_has_the_generators_shift_size_else_its_latent_size():
    class Shifted(nn.Module):
        dim_z, dim_shift = 6, 4

    class Plain(nn.Module):
        dim_z = 6

    assert shift_dim(Shifted()) == 4 and shift_dim(Plain()) == 6
    with pytest.raises(TypeError) as error:
        shift_dim(nn.Linear(2, 2))
    assert str(error.value) == "Linear has neither dim_shift nor dim_z: cannot search a direction"


def test_latents_from_embeddings_are_seeded_draws_of_any_row():
    zs = torch.arange(3.0)[:, None].expand(3, 2)
    drawn = draw_latents(300, 2, torch.Generator().manual_seed(0), zs)
    assert torch.equal(drawn, draw_latents(300, 2, torch.Generator().manual_seed(0), zs))
    assert sorted(set(drawn[:, 0].tolist())) == [0.0, 1.0, 2.0]


def test_search_shows_its_progress_unless_told_not_to(capsys):
    G = demo_generator()
    search(G, DirectionSearchConfig(steps=2, batch_size=2))
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[0].startswith("direction search:   0%|") and " 0/2 " in lines[0]
    search(G, DirectionSearchConfig(steps=2, batch_size=2), progress=False)
    assert capsys.readouterr().err == ""
