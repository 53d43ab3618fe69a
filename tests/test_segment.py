"""segment.py: masks of the right sizes and names for nested folders of any image mode, equal to
Threshold's, optional probability maps and overlays, skipped unreadable files and refused inputs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import evaluate
import segment
from data import read_rgb, to_signed_tensor
from postprocessing import SegmentationInference, Threshold
from tests.weight_fill import fill_module
from UNet.unet_load import load_unet
from UNet.unet_model import UNet
from utils.cli import run_cli

REPO = Path(__file__).resolve().parents[1]
# Relative path -> (height, width, PIL mode); three share a size, so that they are batched together.
IMAGES = {
    "wide.png": (37, 50, "RGB"),
    "a/tall.jpg": (64, 48, "RGB"),
    "a/b/gray.png": (37, 50, "L"),
    "a/b/alpha.png": (37, 50, "RGBA"),
}


def picture(height: int, width: int, mode: str, seed: int) -> Image.Image:
    """A bright blob on a noisy gradient, so that the masks are neither empty nor full."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    blob = ((y - 0.4) ** 2 + (x - 0.5) ** 2 < 0.06) * 150
    gray = 40 + 60 * x + blob
    rgb = np.stack([gray, gray * 0.8, gray * 0.6], axis=-1) + rng.normal(0, 10, (height, width, 3))
    return Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).convert(mode)


def contrasting_unet() -> UNet:
    """A width-4 U-Net of filled weights whose output layer is stretched so that the masks of IMAGES are
    neither empty nor full: a random U-Net's probability barely varies over an image."""
    unet = fill_module(UNet(base_width=4), seed=0)
    with torch.no_grad():
        unet.outc.conv.weight *= 300
        unet.outc.conv.bias *= 300
        unet.outc.conv.bias[1] -= 50  # about the median logit difference over IMAGES
    return unet


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "segmentation.pth"
    torch.save(contrasting_unet().state_dict(), path)
    return path


@pytest.fixture
def images(tmp_path) -> Path:
    root = tmp_path / "images"
    for seed, (name, (height, width, mode)) in enumerate(IMAGES.items()):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        picture(height, width, mode, seed).save(root / name)
    return root


def flags(weights: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["--weights", str(weights), "--images", str(images), "--out", str(out), "--device", "cpu", *extra]


def written(out: Path) -> set[str]:
    return {path.relative_to(out).as_posix() for path in out.rglob("*") if path.is_file()}


def mask_name(name: str) -> str:
    return str(Path(name).with_suffix(".png").as_posix())


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]


def test_nested_folders_of_non_square_images_give_masks_of_their_size_and_name(tmp_path, weights, images):
    out = tmp_path / "out"
    command = [sys.executable, "segment.py", *flags(weights, images, out, "--batch_size", "2")]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "segmented 4 of 4 images" in result.stdout
    assert written(out) == {mask_name(name) for name in IMAGES}
    values = set()
    for name, (height, width, _) in IMAGES.items():
        with Image.open(out / mask_name(name)) as mask:
            assert (mask.mode, mask.size) == ("L", (width, height))
            values |= set(np.unique(np.asarray(mask)).tolist())
    assert values == {0, 255}


@pytest.mark.parametrize("resize_to, thr", [("128", "0.5"), ("none", "0.5"), ("40", "0.3")])
def test_masks_are_those_of_threshold(tmp_path, capsys, weights, images, resize_to, thr):
    out = tmp_path / "out"
    extra = ("--resize_to", resize_to, "--thr", thr, "--batch_size", "1")
    assert run_cli(segment.main, flags(weights, images, out, *extra)) == 0
    threshold = Threshold(
        load_unet(weights, "cpu"), float(thr), None if resize_to == "none" else int(resize_to)
    )
    for name in IMAGES:
        expected = threshold(to_signed_tensor(read_rgb(images / name))[None])[0].numpy()
        np.testing.assert_array_equal(np.asarray(Image.open(out / mask_name(name))), expected * 255)


def test_probabilities_and_overlays_are_written_when_asked(tmp_path, capsys, weights, images):
    out = tmp_path / "out"
    assert run_cli(segment.main, flags(weights, images, out, "--probabilities", "--overlay")) == 0
    masks = {mask_name(name) for name in IMAGES}
    assert written(out) == masks | {f"probabilities/{m}" for m in masks} | {f"overlays/{m}" for m in masks}
    inference = SegmentationInference(load_unet(weights, "cpu"), 128)
    for name, (height, width, _) in IMAGES.items():
        probability = inference(to_signed_tensor(read_rgb(images / name))[None])[0]
        saved = np.asarray(Image.open(out / "probabilities" / mask_name(name)))
        np.testing.assert_array_equal(saved, (probability * 255).round().to(torch.uint8).numpy())
        with Image.open(out / "overlays" / mask_name(name)) as overlay:
            assert (overlay.mode, overlay.size) == ("RGB", (width, height))


def test_images_of_equal_size_are_batched(tmp_path, weights, images):
    config = segment.SegmentConfig(weights, images, tmp_path / "out", resize_to=None, batch_size=2)
    unet = load_unet(weights, "cpu")
    batch_sizes = []

    def model(x: torch.Tensor) -> torch.Tensor:
        batch_sizes.append(len(x))
        return unet(x)

    assert segment.segment_all(model, segment.plan_outputs(config), config) == (4, {})
    assert sorted(batch_sizes) == [1, 1, 2]
    batch = torch.stack([to_signed_tensor(read_rgb(images / name)) for name in ("wide.png", "a/b/gray.png")])
    batched, _ = segment.predict_masks(unet, batch, resize_to=None)
    one_by_one = torch.cat([segment.predict_masks(unet, image[None], resize_to=None)[0] for image in batch])
    torch.testing.assert_close(batched, one_by_one, rtol=0, atol=1e-5)


def test_unreadable_files_are_skipped_named_and_counted(tmp_path, capsys, weights, images):
    whole = (images / "wide.png").read_bytes()
    (images / "a/cut.png").write_bytes(whole[: len(whole) // 2])
    (images / "a/b/notes.jpg").write_text("not an image")
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        assert run_cli(segment.main, flags(weights, images, out)) == 0
    skipped = {str(w.message).split(":")[0] for w in caught if str(w.message).startswith("skipped")}
    assert skipped == {f"skipped {images / 'a/cut.png'}", f"skipped {images / 'a/b/notes.jpg'}"}
    assert "segmented 4 of 6 images" in capsys.readouterr().out
    assert written(out) == {mask_name(name) for name in IMAGES}


def test_nothing_readable_is_an_error(tmp_path, capsys, weights):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/notes.png").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.png"):
        assert run_cli(segment.main, flags(weights, tmp_path / "images", tmp_path / "out")) == 1
    assert error_lines(capsys) == [
        f"error: none of the 1 image files under {tmp_path / 'images'} can be read (each is named in a "
        "warning above): nothing was written"
    ]
    assert not (tmp_path / "out").exists()


def test_a_training_checkpoint_gives_the_same_masks(tmp_path, capsys, weights, images):
    checkpoint = tmp_path / "checkpoint.pth"
    torch.save({"model": torch.load(weights, weights_only=True), "opt": {}, "step": 3}, checkpoint)
    assert run_cli(segment.main, flags(weights, images, tmp_path / "from_weights")) == 0
    assert run_cli(segment.main, flags(checkpoint, images, tmp_path / "from_checkpoint")) == 0
    for name in IMAGES:
        from_weights = np.asarray(Image.open(tmp_path / "from_weights" / mask_name(name)))
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "from_checkpoint" / mask_name(name))), from_weights
        )


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch_size", "0"], "--batch_size 0: must be a whole number of at least 1"),
        (["--thr", "0"], "--thr 0.0: must be a number above 0 and at most 1"),
        (["--thr", "1.5"], "--thr 1.5: must be a number above 0 and at most 1"),
        (["--thr", "nan"], "--thr nan: must be a number above 0 and at most 1"),
        (["--resize_to", "8"], "--resize_to 8: must be a whole number of at least 16"),
    ],
)
def test_bad_flags_are_named_and_nothing_is_written(tmp_path, capsys, weights, images, extra, message):
    assert run_cli(segment.main, flags(weights, images, tmp_path / "out", *extra)) == 1
    assert error_lines(capsys) == [f"error: {message}"]
    assert not (tmp_path / "out").exists()


def test_out_overlapping_the_images_is_refused(tmp_path, capsys, weights, images):
    for out in (images, images / "masks", tmp_path):
        assert run_cli(segment.main, flags(weights, images, out)) == 1
        [line] = error_lines(capsys)
        assert f"--out {out} and --images {images} overlap" in line
    assert written(images) == set(IMAGES)


def test_missing_weights_are_named_with_how_to_get_them(tmp_path, capsys, images):
    assert run_cli(segment.main, flags(tmp_path / "absent.pth", images, tmp_path / "out")) == 1
    [line] = error_lines(capsys)
    assert f"{tmp_path / 'absent.pth'} does not exist" in line and "download_all.sh --unets" in line
    assert not (tmp_path / "out").exists()


def test_two_images_of_one_stem_are_refused_naming_both(tmp_path, capsys, weights, images):
    picture(20, 20, "RGB", 0).save(images / "a/tall.png")
    assert run_cli(segment.main, flags(weights, images, tmp_path / "out")) == 1
    [line] = error_lines(capsys)
    assert f"{images / 'a/tall.jpg'} and {images / 'a/tall.png'} would both be written to" in line
    assert not (tmp_path / "out").exists()


def test_work_at_an_image_s_own_size_is_bounded_by_max_megapixels(tmp_path):
    """--resize_to none and refinement work at the image's size (memory grows with its area): above the
    limit the run is refused before anything is written, naming the file, its size and the flags."""
    from demo.assets import DEMO_UNET_PATH
    from postprocessing import oversized
    from utils.errors import InputError

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(tmp_path / "images" / "wide.png")
    arguments = ["--weights", str(DEMO_UNET_PATH), "--images", str(tmp_path / "images")]
    arguments += ["--out", str(tmp_path / "out"), "--max_megapixels", "0.001"]
    for flags in (["--resize_to", "none"], ["--resize_to", "32", "--refine", "bilateral"]):
        with pytest.raises(InputError, match=r"wide.png: 50x40 \(0.0 MP\) is above --max_megapixels 0.001"):
            segment.main([*arguments, *flags])
        assert not (tmp_path / "out").exists()
    assert segment.main([*arguments, "--resize_to", "32"]) == 1  # resized, no refinement: bounded
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "masks" / "wide.png")
    scoring = ["--weights", str(DEMO_UNET_PATH), "--images", str(tmp_path / "images")]
    scoring += ["--masks", str(tmp_path / "masks"), "--max_megapixels", "0.001", "--sod", "false"]
    with pytest.raises(InputError, match=r"wide.png: 50x40 \(0.0 MP\) is above --max_megapixels 0.001"):
        evaluate.main([*scoring, "--resize_to", "none"])
    assert evaluate.main([*scoring, "--resize_to", "32"])
    assert oversized(2000, 2000, None, False, 4.0) == "" and oversized(2001, 2000, 128, False, 4.0) == ""
    assert "for refinement" in oversized(2001, 2000, 128, True, 4.0)
    assert "for --resize_to none" in oversized(2001, 2000, None, False, 4.0)
