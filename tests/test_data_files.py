"""Real folders: broken files found up front, masks read by one rule, 16-bit files scaled."""

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data
from data import SegmentationDataset, UnannotatedDataset, mask_gray, read_rgb, to_rgb
from tests.test_data import make_pairs, rgb, write_image
from utils.errors import InputError


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def noisy(h: int, w: int) -> np.ndarray:
    """Incompressible content, so that half of the file is half of the pixels."""
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_png_16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit gray (`[H, W]`) or 48-bit RGB (`[H, W, 3]`) PNG, written by hand (PIL cannot write 48-bit)."""
    height, width = values.shape[:2]
    color_type = 0 if values.ndim == 2 else 2
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in values)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


# --- the up-front scan


@pytest.mark.parametrize("broken", ["images/bad.png", "masks/bad.jpg"])
def test_a_truncated_file_is_reported_at_construction(tmp_path, broken):
    images, masks = make_pairs(tmp_path)
    write_image(images / "bad.png", noisy(64, 64))
    write_image(masks / "bad.jpg", noisy(64, 64))
    truncate(tmp_path / broken)
    name = Path(broken).name
    with pytest.raises(
        InputError, match=rf"1 image/mask file.*{name} \(image file is truncated.*--skip_bad_files"
    ):
        SegmentationDataset(images, masks)


def test_the_scan_shows_one_progress_line_per_folder(tmp_path, capsys, monkeypatch):
    make_pairs(tmp_path)
    monkeypatch.chdir(tmp_path)  # short folder names, so that the 100-column lines are not cut
    SegmentationDataset("images", "masks")
    lines = capsys.readouterr().err.splitlines()  # the opening lines only: the bars are not left behind
    assert len(lines) == 2
    assert lines[0].startswith("checking images:   0%|") and " 0/2 " in lines[0]
    assert lines[1].startswith("checking masks:   0%|") and " 0/2 " in lines[1]


def test_an_error_without_a_message_is_reported_by_its_type(tmp_path):
    path = write_image(tmp_path / "a.png", rgb(2, 2, 0))

    def refuse(image):
        raise KeyError()

    assert data._unreadable([path], refuse, tmp_path) == {path: "KeyError"}


def test_a_file_that_is_not_an_image_is_reported(tmp_path):
    images, masks = make_pairs(tmp_path)
    (images / "x2.jpg").write_text("not a JPEG")
    with pytest.raises(InputError, match="x2.jpg"):
        SegmentationDataset(images, masks)


def test_skip_bad_files_leaves_the_pair_out_with_a_warning(tmp_path):
    images, masks = make_pairs(tmp_path)
    truncate(write_image(images / "bad.jpg", noisy(64, 64)))
    write_image(masks / "bad.png", np.zeros((64, 64), dtype=np.uint8))
    with pytest.warns(UserWarning, match=r"left out 1 of 3 image/mask pairs .*bad\.jpg"):
        dataset = SegmentationDataset(images, masks, crop=False, skip_bad_files=True)
    assert [image.stem for image, _ in dataset.pairs] == ["x1", "x2"]
    assert dataset[1][1][0].tolist() == [1] * 6 + [0] * 6


@pytest.mark.parametrize("bad_count", [5, 7])
def test_bad_files_are_listed_up_to_five_then_counted(tmp_path, bad_count):
    images, masks = make_pairs(tmp_path)
    for index in range(bad_count):
        (images / f"bad{index}.jpg").write_text("not a JPEG")
        write_image(masks / f"bad{index}.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(InputError) as error:
        SegmentationDataset(images, masks)
    listed = "; ".join(f"{images / f'bad{index}.jpg'} (" for index in range(5))
    message = str(error.value)
    assert message.startswith(f"{bad_count} image/mask file(s) cannot be read: {images / 'bad0.jpg'} (")
    assert [part.split(" (")[0] + " (" for part in message.split(": ", 1)[1].split("; ")[:5]] == listed.split(
        "; "
    )
    more = "; and 2 more. " if bad_count == 7 else ". "
    assert ("; and 2 more. " in message) == (bad_count == 7) and ("more" in message) == (bad_count == 7)
    assert message.endswith(
        f"{more}Fix or remove them, or pass --skip_bad_files (skip_bad_files=True) to leave such pairs out"
    )
    with pytest.warns(UserWarning) as caught:
        SegmentationDataset(images, masks, skip_bad_files=True)
    assert str(caught[0].message).startswith(
        f"left out {bad_count} of {bad_count + 2} image/mask pairs whose"
    )


def test_nothing_left_after_skipping_is_an_error(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.png", rgb(4, 4, 0))
    truncate(write_image(masks / "a.png", noisy(64, 64)))
    with pytest.raises(InputError, match="no image/mask pair is left"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SegmentationDataset(images, masks, skip_bad_files=True)


def test_a_broken_mask_without_an_image_is_not_checked(tmp_path):
    images, masks = make_pairs(tmp_path)
    truncate(write_image(masks / "unused.png", noisy(64, 64)))
    assert len(SegmentationDataset(images, masks)) == 2


# --- the mask rule


def gray_mask(row: list[int], dtype=np.uint8) -> np.ndarray:
    return np.array([row], dtype=dtype)


def palette_mask(indices: list[int] | list[list[int]], palette: list[int]) -> Image.Image:
    mask = Image.fromarray(np.atleast_2d(np.array(indices, dtype=np.uint8)), "P")
    mask.putpalette(palette)
    return mask


def rgba_mask(colours: list[tuple[int, int, int]], alphas: list[int], mode: str = "RGBA") -> Image.Image:
    pixels = np.array([[(*colour, alpha) for colour, alpha in zip(colours, alphas, strict=True)]], np.uint8)
    return Image.fromarray(pixels, "RGBA").convert(mode)


BLACK, WHITE, VOC_RED = [0, 0, 0], [255, 255, 255], [128, 0, 0]
MASKS = {
    "0/255": (Image.fromarray(gray_mask([0, 255, 255, 0])), [0, 1, 1, 0]),
    "0/1 labels": (Image.fromarray(gray_mask([0, 1, 1, 0])), [0, 1, 1, 0]),
    "RGB 0/1 labels": (Image.fromarray(np.array([[[0, 0, 0], [1, 1, 1], [0, 1, 0]]], np.uint8)), [0, 1, 1]),
    "all background": (Image.fromarray(gray_mask([0, 0, 0])), [0, 0, 0]),
    "soft": (Image.fromarray(gray_mask([0, 128, 200, 127, 2])), [0, 1, 1, 0, 0]),
    "1-bit": (Image.fromarray(np.array([[False, True, True]])), [0, 1, 1]),
    "palette, grays": (palette_mask([0, 1, 2], BLACK + [127] * 3 + WHITE), [0, 0, 1]),
    "palette, black/white": (palette_mask([0, 1, 1], BLACK + WHITE), [0, 1, 1]),
    "palette, white/black": (palette_mask([0, 1, 1], WHITE + BLACK), [1, 0, 0]),
    "palette, VOC labels": (palette_mask([0, 1, 1], BLACK + VOC_RED), [0, 1, 1]),
    "RGBA cut-out": (rgba_mask([(0, 0, 0)] * 3, [0, 255, 200]), [0, 1, 1]),
    "LA cut-out": (rgba_mask([(255, 255, 255)] * 3, [0, 128, 127], "LA"), [0, 1, 0]),
    "RGBA, colour": (rgba_mask([(0, 0, 0), (255, 255, 255), (0, 0, 0)], [255, 255, 0]), [0, 1, 0]),
    "RGBA, opaque black": (rgba_mask([(0, 0, 0)] * 2, [255, 255]), [0, 0]),
    # Coloured masks by their red channel, as the original (luma would give 0, 1, 1, 0).
    "RGB, coloured": (
        Image.fromarray(np.array([[[255, 0, 0], [0, 255, 0], [0, 200, 255], [200, 90, 90]]], np.uint8)),
        [1, 0, 0, 1],
    ),
    "palette, coloured": (palette_mask([0, 1, 2, 2], BLACK + [0, 255, 0] + [255, 0, 0]), [0, 0, 1, 1]),
}


@pytest.mark.parametrize("name", MASKS)
def test_masks_are_read_by_the_rule(name):
    mask, expected = MASKS[name]
    gray = torch.from_numpy(np.asarray(mask_gray(mask), dtype=np.float32) / 255)
    assert ((gray >= 0.5).long()[0]).tolist() == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 65535, 32768, 32767], [0, 1, 1, 0]),
        ([0, 1, 1, 0], [0, 1, 1, 0]),
        ([0, 255, 255, 0], [0, 0, 0, 0]),
    ],
)
def test_16_bit_masks_are_scaled_by_their_bit_depth(tmp_path, values, expected):
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.png", rgb(1, 4, 0))
    write_png_16(masks / "a.png", gray_mask(values, np.uint16))
    assert Image.open(masks / "a.png").mode.startswith("I")
    assert SegmentationDataset(images, masks, crop=False)[0][1][0].tolist() == expected


def test_32_bit_gray_of_older_pillow_is_taken_as_16_bit_when_above_255():
    as_16_bit = Image.fromarray(gray_mask([0, 1000, 40000, 65535], np.int32))
    assert as_16_bit.mode == "I" and np.asarray(mask_gray(as_16_bit)).tolist() == [[0, 3, 156, 255]]
    as_8_bit = Image.fromarray(gray_mask([0, 100, 255], np.int32))
    assert np.asarray(mask_gray(as_8_bit)).tolist() == [[0, 100, 255]]


def test_32_bit_gray_is_16_bit_from_256_and_clipped_to_its_range():
    assert np.asarray(mask_gray(Image.fromarray(gray_mask([0, 256], np.int32)))).tolist() == [[0, 1]]
    out_of_range = Image.fromarray(gray_mask([-5, 40000, 65536, 70000], np.int32))
    assert np.asarray(to_rgb(out_of_range))[0, :, 0].tolist() == [0, 156, 255, 255]


def test_label_masks_with_an_opaque_alpha_are_labels():
    mask = rgba_mask([(0, 0, 0), (1, 1, 1), (1, 1, 1)], [255, 255, 255], "LA")
    assert np.asarray(mask_gray(mask)).tolist() == [[0, 255, 255]]


def test_read_rgb_decodes_the_whole_file_and_makes_it_8_bit_rgb(tmp_path):
    write_png_16(tmp_path / "gray16.png", np.array([[32768, 65535]], np.uint16))
    image = read_rgb(str(tmp_path / "gray16.png"))
    assert image.mode == "RGB" and np.asarray(image).tolist() == [[[128] * 3, [255] * 3]]
    with pytest.raises(OSError, match="truncated"):
        read_rgb(truncate(write_image(tmp_path / "noisy.png", noisy(64, 64))))


def test_dataset_reads_palette_label_masks(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "a.jpg", rgb(2, 3, 0))
    masks.mkdir()
    palette_mask([[0, 1, 1], [0, 0, 1]], BLACK + VOC_RED).save(masks / "a.png")
    assert SegmentationDataset(images, masks, crop=False)[0][1].tolist() == [[0, 1, 1], [0, 0, 1]]


@pytest.mark.parametrize("mode", ["L", "RGB", "1", "P", "RGBA"])
def test_ordinary_masks_read_as_the_original_read_them(mode):
    """0/255 and soft 8-bit masks (opaque if with alpha) read as the original did, bit for bit: as RGB,
    channel 0 (gray masks: their gray value; colour ones: their red channel)."""
    rng = np.random.default_rng(3)
    binary = Image.fromarray((rng.random((20, 30)) > 0.5).astype(np.uint8) * 255)
    soft = Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    for mask in (binary.convert(mode), soft.convert(mode)):
        assert mask_gray(mask).mode == "L"
        assert np.array_equal(np.asarray(mask_gray(mask)), np.asarray(mask.convert("RGB"))[..., 0])


# --- 16-bit images


def test_16_bit_gray_images_are_scaled_not_clipped(tmp_path):
    write_png_16(tmp_path / "half.png", np.full((2, 3), 32768, np.uint16))
    write_png_16(tmp_path / "full.png", np.full((2, 3), 65535, np.uint16))
    dataset = UnannotatedDataset(tmp_path)
    assert dataset[1].abs().max() < 0.01  # half.png: mid-gray, not white
    assert torch.equal(dataset[0], torch.ones(3, 2, 3))
    big_endian = Image.frombytes("I;16B", (2, 1), np.array([32768, 65535], ">u2").tobytes())
    assert np.asarray(to_rgb(big_endian))[0].tolist() == [[128] * 3, [255] * 3]


def test_48_bit_rgb_images_are_reduced_by_pil_itself(tmp_path):
    write_png_16(tmp_path / "a.png", np.array([[[32768, 0, 65535]]], np.uint16))
    assert Image.open(tmp_path / "a.png").mode == "RGB"
    image = UnannotatedDataset(tmp_path)[0][:, 0, 0]
    torch.testing.assert_close(image, torch.tensor([2 * 128 / 255 - 1, -1.0, 1.0]))


def test_16_bit_images_in_segmentation_pairs(tmp_path):
    images, masks = make_pairs(tmp_path)
    write_png_16(images / "x2.png", np.full((8, 12), 32768, np.uint16))
    (images / "x2.jpg").unlink()
    assert SegmentationDataset(images, masks)[1][0].abs().max() < 0.01


def test_8_bit_images_convert_as_before():
    rng = np.random.default_rng(4)
    for mode in ("L", "RGB", "RGBA", "P", "1", "CMYK"):
        image = Image.fromarray(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)).convert(mode)
        assert np.array_equal(np.asarray(to_rgb(image)), np.asarray(image.convert("RGB")))


def test_label_palette_masks_are_read_by_the_colours_of_indices_0_and_1_only():
    """Index 2's colour does not matter; colours on the same side of mid-gray (128 counts as light) make
    the indices labels (1 = foreground), colours on both sides make the colours the levels."""
    indices = [[0, 1], [1, 0]]
    inverted = mask_gray(palette_mask(indices, WHITE + BLACK + WHITE))
    assert np.asarray(inverted).tolist() == [[255, 0], [0, 255]]
    labels = mask_gray(palette_mask(indices, [128] * 3 + WHITE))
    assert np.asarray(labels).tolist() == [[0, 255], [255, 0]]


def test_a_one_pixel_wide_cut_out_reads_its_alpha():
    rgba = np.zeros((3, 1, 4), dtype=np.uint8)
    rgba[:, 0, :3] = 40
    rgba[:, 0, 3] = [0, 255, 0]
    assert np.asarray(mask_gray(Image.fromarray(rgba, mode="RGBA")))[:, 0].tolist() == [0, 255, 0]
