"""The fast bilateral solver: a bilateral grid that splats every pixel once, a bistochastic blur, and
refinement that moves unsure pixels to the image's edges while sure ones stay; opt-in everywhere."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

import evaluate
import segment
from postprocessing import SegmentationInference
from refinement import (
    GRID_DIMENSIONS,
    REFINE_CHOICES,
    BilateralGrid,
    BilateralRefiner,
    BilateralSolverConfig,
    DenseCrfConfig,
    bilateral_solve,
    bistochastic_normalisers,
    make_refiner,
    refine_flag,
)
from UNet.unet_model import UNet
from utils.errors import InputError


def two_colour_image(size: int = 32) -> tuple[torch.Tensor, np.ndarray]:
    """A [3, H, W] image in [-1, 1]: an orange square on blue, and its true mask."""
    truth = np.zeros((size, size), bool)
    truth[8:24, 10:26] = True
    rgb = np.where(truth[..., None], [230, 160, 30], [30, 60, 200]).astype(np.float64)
    rgb += np.random.default_rng(0).normal(0, 4, rgb.shape)
    return torch.tensor(rgb / 127.5 - 1).permute(2, 0, 1).float(), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


def test_the_grid_splats_every_pixel_once_and_the_blur_is_bistochastic():
    image, _ = two_colour_image()
    rgb = ((image.permute(1, 2, 0) + 1) * 127.5).numpy()
    grid = BilateralGrid(rgb, BilateralSolverConfig())
    assert grid.splat(np.ones(32 * 32)).sum() == 32 * 32
    assert 2 <= grid.size < 32 * 32  # pixels share vertices: two colours, few cells
    m, n = bistochastic_normalisers(grid)
    counts = grid.splat(np.ones(32 * 32))
    assert np.allclose(n * grid.blur(n), m) and np.allclose(m, counts, rtol=0.05)
    values = np.arange(grid.size, dtype=float)
    assert np.array_equal(grid.slice(values), values[grid.vertex_of_pixel])


def refiner(name: str):
    if name == "crf":
        pytest.importorskip("pydensecrf.densecrf", reason="the dense CRF needs requirements-crf.txt")
    return make_refiner(name)


@pytest.mark.parametrize("name", ["bilateral", "crf"])
def test_unsure_pixels_follow_the_edges_and_sure_ones_stay(name):
    image, truth = two_colour_image()
    probability = np.where(truth, 0.95, 0.05)
    probability[:, 6:12] = 0.55  # an unsure band across the square's left edge
    refined = refiner(name)(image, torch.tensor(probability)).numpy()
    assert iou(probability >= 0.5, truth) < 0.85
    assert iou(refined >= 0.5, truth) > 0.97
    sure = np.abs(2 * probability - 1) > 0.8
    assert np.abs(refined - probability)[sure].mean() < 0.1
    assert refined.min() >= 0 and refined.max() <= 1


def star_scene(size: int = 256) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """A photo-sized test of our own: a five-pointed blob on a shaded background with colour noise, and
    a map as a coarse U-Net would give: the truth blurred by size/24 px plus noise (IoU 0.84 at 0.5)."""
    rng = np.random.default_rng(1)
    rows, columns = np.mgrid[:size, :size] / size
    angle, radius = np.arctan2(rows - 0.5, columns - 0.45), np.hypot(rows - 0.5, columns - 0.45)
    truth = radius < 0.25 + 0.08 * np.cos(5 * angle)
    background = np.stack([60 + 40 * rows, 110 + 30 * columns, np.full_like(rows, 70)], -1)
    blob = np.stack([np.full_like(rows, 200), 80 + 50 * rows, np.full_like(rows, 60)], -1)
    rgb = (np.where(truth[..., None], blob, background) + rng.normal(0, 12, (size, size, 3))).clip(0, 255)
    coarse = gaussian_filter(truth.astype(np.float64), size / 24) + rng.normal(0, 0.15, truth.shape)
    return torch.tensor(rgb / 127.5 - 1).permute(2, 0, 1).float(), truth, torch.tensor(coarse.clip(0, 1))


@pytest.mark.parametrize("name", ["bilateral", "crf"])
def test_at_a_realistic_size_a_coarse_map_snaps_to_the_object(name):
    image, truth, coarse = star_scene()
    before = iou(coarse.numpy() >= 0.5, truth)
    after = iou(refiner(name)(image, coarse).numpy() >= 0.5, truth)
    assert before < 0.86 and after > before + 0.1  # measured: 0.843 -> 0.999 (bilateral), 1.000 (crf)


def test_the_crf_without_its_package_names_the_requirements_file(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(InputError) as error:
        make_refiner("crf")
    assert str(error.value) == (
        "--refine crf needs pydensecrf2, which is not installed: "
        "pip install -r requirements-crf.txt (it builds with a C++ compiler)"
    )


def test_the_refine_flag_offers_each_refiner_and_defaults_to_none():
    field = refine_flag()
    assert field.default == "none" and REFINE_CHOICES == ("none", "bilateral", "crf")
    assert field.metadata["metavar"] == "{none,bilateral,crf}" and field.metadata["parse"] is str
    assert field.metadata["help"] == (
        "refine the probability map before its threshold: none (the paper's), bilateral (the fast "
        "bilateral solver) or crf (a dense CRF, needs requirements-crf.txt); docs/beyond.md"
    )
    check = field.metadata["check"]
    assert [check(name) for name in REFINE_CHOICES] == [None] * 3 and check("densecrf") is not None


def test_the_blur_weighs_the_centre_twice_each_dimension_and_each_neighbour_once():
    rgb = np.zeros((1, 2, 3))
    rgb[0, 1] = 40  # two pixels, one luma cell apart: two neighbouring vertices
    grid = BilateralGrid(rgb, BilateralSolverConfig(spatial_fraction=100.0))
    assert grid.size == 2
    assert grid.blur_matrix.toarray().tolist() == [[2 * GRID_DIMENSIONS, 1], [1, 2 * GRID_DIMENSIONS]]


def noisy_inputs(height: int = 24, width: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image in [-1, 1] with exact -1 and 1 values, and a random map with exact 0 and 1."""
    generator = torch.Generator().manual_seed(3)
    image = (torch.rand(3, height, width, generator=generator) * 2 - 1).clamp(-0.97, 0.97)
    image[:, :2, :2], image[:, -2:, -2:] = -1.0, 1.0
    probability = torch.rand(height, width, generator=generator)
    probability[0, :3], probability[-1, :3] = 0.0, 1.0
    return image, probability


def test_the_refiner_solves_on_the_image_s_0_255_colours_with_the_margin_as_confidence():
    image, probability = noisy_inputs()
    refined = BilateralRefiner()(image, probability)
    rgb = ((image.permute(1, 2, 0).double() + 1) * 127.5).numpy()
    target = probability.double().numpy()
    expected = bilateral_solve(rgb, target, np.abs(2 * target - 1), BilateralSolverConfig()).clip(0, 1)
    assert refined.dtype == torch.float32 and np.allclose(refined.numpy(), expected, atol=1e-6)
    assert not np.allclose(expected, target, atol=0.05)  # the solve did something


def test_make_refiner_passes_its_parameters_on():
    image, truth = two_colour_image()
    probability = np.where(truth, 0.95, 0.05)
    probability[:, 6:12] = 0.55
    probability = torch.tensor(probability)
    loose = make_refiner("bilateral", BilateralSolverConfig(lam=1e-3))(image, probability)
    assert (loose - make_refiner("bilateral")(image, probability)).abs().max() > 0.01


@pytest.mark.parametrize("smoothness_weight", [0.0, 3.0])
def test_the_crf_is_the_documented_model(smoothness_weight):
    """Unary -log p, the bilateral kernel (and the smoothness kernel when weighted) with widths as
    fractions of the shorter side, mean field: written out here against pydensecrf itself."""
    densecrf = pytest.importorskip("pydensecrf.densecrf", reason="the dense CRF needs requirements-crf.txt")
    image, probability = noisy_inputs()  # 24 x 32: the shorter side is the height
    config = DenseCrfConfig(
        smoothness_weight=smoothness_weight, smoothness_fraction=0.2, bilateral_fraction=0.06
    )
    refined = make_refiner("crf", config)(image, probability)
    rgb = np.ascontiguousarray(((image.permute(1, 2, 0) + 1) * 127.5).round().numpy().astype(np.uint8))
    p = probability.numpy().clip(1e-5, 1 - 1e-5)
    crf = densecrf.DenseCRF2D(32, 24, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.stack([1 - p, p]).reshape(2, -1))))
    if smoothness_weight:
        crf.addPairwiseGaussian(sxy=0.2 * 24, compat=smoothness_weight)
    crf.addPairwiseBilateral(sxy=0.06 * 24, srgb=32.0, rgbim=rgb, compat=80.0)
    expected = np.array(crf.inference(5)).reshape(2, 24, 32)[1]
    assert refined.dtype == torch.float32 and np.allclose(refined.numpy(), expected, atol=1e-6)
    assert not np.allclose(expected, probability.numpy(), atol=0.05)


def test_a_confident_map_is_left_as_it_is():
    image, truth = two_colour_image()
    certain = torch.tensor(truth.astype(np.float64))
    assert torch.allclose(BilateralRefiner()(image, certain), certain, atol=1e-3)


def test_the_spatial_cell_scales_with_the_image():
    config = BilateralSolverConfig()
    assert config.sigma_spatial(32, 32) == 4.0 and config.sigma_spatial(300, 400) == 37.5
    assert config.sigma_spatial(4, 4) == 1.0


def test_refinement_is_off_unless_asked_for():
    assert make_refiner("none") is None
    model = UNet(base_width=4).eval()
    images = two_colour_image()[0][None]
    plain = SegmentationInference(model)(images)
    refined = SegmentationInference(model, refine=make_refiner("bilateral"))(images)
    assert plain.shape == refined.shape and not torch.equal(plain, refined)


@pytest.fixture
def folder(tmp_path):
    image, truth = two_colour_image()
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.fromarray(((image.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()).save(
        tmp_path / "images/a.png"
    )
    Image.fromarray((truth * 255).astype(np.uint8)).save(tmp_path / "masks/a.png")
    torch.save(soft_edged_unet(image, truth).state_dict(), tmp_path / "unet.pth")
    return tmp_path


def soft_edged_unet(image: torch.Tensor, truth: np.ndarray) -> UNet:
    """A small U-Net fitted to a blurred mask of the image: unsure at the object's edges."""
    torch.manual_seed(0)
    model = UNet(base_width=4)
    soft = torch.tensor(gaussian_filter(truth.astype(np.float32), 3))
    target = torch.stack([1 - soft, soft])[None]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(image[None]), target).backward()
        optimizer.step()
    return model.eval()


def evaluate_arguments(folder) -> list[str]:
    weights, images, masks = (str(folder / name) for name in ("unet.pth", "images", "masks"))
    return ["--weights", weights, "--images", images, "--masks", masks]


def test_segment_and_evaluate_refine_through_the_same_inference(folder):
    weights, images = str(folder / "unet.pth"), str(folder / "images")
    flags = ["--resize_to", "none", "--refine", "bilateral"]
    segment.main(["--weights", weights, "--images", images, "--out", str(folder / "out"), *flags])
    written = np.asarray(Image.open(folder / "out/a.png")) > 127
    image = segment.to_signed_tensor(segment.read_rgb(folder / "images/a.png"))
    model = segment.load_unet(folder / "unet.pth", "cpu")
    _, expected = segment.predict_masks(model, image[None], None, 0.5, make_refiner("bilateral"))
    assert np.array_equal(written, expected[0].numpy())
    arguments = [*evaluate_arguments(folder), "--resize_to", "none", "--sod", "false", "--names", "images"]
    plain = evaluate.main(arguments)[str(folder / "unet.pth")]["images"]
    refined = evaluate.main([*arguments, "--refine", "bilateral"])[str(folder / "unet.pth")]["images"]
    assert plain.IoU != refined.IoU
    assert (
        evaluate.main([*arguments, "--refine", "none"])[str(folder / "unet.pth")]["images"].IoU == plain.IoU
    )


def test_an_unknown_refinement_is_refused_with_its_flag(folder):
    arguments = evaluate_arguments(folder)
    with pytest.raises(InputError, match="--refine.*must be one of none, bilateral, crf"):
        evaluate.main([*arguments, "--refine", "densecrf"])
