from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from data import SegmentationDataset, UnannotatedDataset
from utils.errors import InputError


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def rgb(h: int, w: int, value: int) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_unannotated_dataset_walks_nested_folders_in_sorted_order(tmp_path):
    write_image(tmp_path / "b.png", rgb(4, 6, 255))
    write_image(tmp_path / "a.JPG", rgb(5, 5, 0))
    write_image(tmp_path / "sub" / "c.jpeg", np.full((3, 7), 51, dtype=np.uint8))  # grayscale
    write_image(tmp_path / "sub" / "d.png", np.zeros((2, 2, 4), dtype=np.uint8))  # RGBA
    (tmp_path / "notes.txt").write_text("not an image")
    dataset = UnannotatedDataset(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in dataset.files] == [
        "a.JPG",
        "b.png",
        "sub/c.jpeg",
        "sub/d.png",
    ]
    shapes = [tuple(dataset[i].shape) for i in range(len(dataset))]
    assert shapes == [(3, 5, 5), (3, 4, 6), (3, 3, 7), (3, 2, 2)]
    assert torch.equal(dataset[1], torch.ones(3, 4, 6))
    torch.testing.assert_close(dataset[2], torch.full((3, 3, 7), 2 * 51 / 255 - 1))
    assert UnannotatedDataset(tmp_path, size=10)[1].shape == (3, 10, 15)


def make_pairs(tmp_path: Path) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    write_image(images / "x2.jpg", rgb(8, 12, 200))
    write_image(images / "nested" / "x1.png", rgb(10, 6, 10))
    gray = np.zeros((8, 12), dtype=np.uint8)
    gray[:, :3] = 255
    gray[:, 3:6] = 128  # 0.502 >= 0.5: foreground
    gray[:, 6:9] = 127  # 0.498: background
    write_image(masks / "x2.png", gray)
    write_image(masks / "x1.png", np.full((10, 6), 255, dtype=np.uint8))
    write_image(masks / "unused.png", np.zeros((3, 3), dtype=np.uint8))
    return images, masks


def test_segmentation_dataset_pairs_by_stem_and_binarises(tmp_path):
    images, masks = make_pairs(tmp_path)
    dataset = SegmentationDataset(images, masks, crop=False)
    assert [(i.name, m.name) for i, m in dataset.pairs] == [("x1.png", "x1.png"), ("x2.jpg", "x2.png")]
    image, mask = dataset[1]
    assert image.shape == (3, 8, 12) and image.dtype == torch.float32
    assert mask.dtype == torch.int64 and mask.shape == (8, 12)
    assert mask[0].tolist() == [1] * 6 + [0] * 6
    assert torch.equal(dataset[0][1], torch.ones(10, 6, dtype=torch.int64))
    assert SegmentationDataset(images, masks, crop=False, mask_thr=0.6)[1][1][0].tolist() == [1] * 3 + [0] * 9
    # `>=` as in the original: a gray level equal to the threshold is foreground.
    assert (
        SegmentationDataset(images, masks, crop=False, mask_thr=128 / 255)[1][1][0].tolist()
        == mask[0].tolist()
    )


def test_crop_and_size(tmp_path):
    images, masks = make_pairs(tmp_path)
    image, mask = SegmentationDataset(images, masks, crop=True)[1]
    assert image.shape == (3, 8, 8) and mask.shape == (8, 8)
    assert mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # columns 2..9 of the 12
    image, mask = SegmentationDataset(images, masks, crop=True, size=4)[0]
    assert image.shape == (3, 4, 4) and mask.shape == (4, 4)
    image, mask = SegmentationDataset(images, masks, crop=False, size=4)[1]
    assert image.shape == (3, 4, 6) and mask.shape == (4, 6)


def test_works_with_a_dataloader(tmp_path):
    images, masks = make_pairs(tmp_path)
    batches = list(DataLoader(SegmentationDataset(images, masks, size=4), batch_size=2))
    assert len(batches) == 1
    assert batches[0][0].shape == (2, 3, 4, 4) and batches[0][1].shape == (2, 4, 4)


def test_folder_errors_say_which_folder_and_what_to_do(tmp_path):
    with pytest.raises(InputError) as error:
        UnannotatedDataset(tmp_path / "nowhere")
    assert (
        str(error.value)
        == f"image folder {tmp_path / 'nowhere'} does not exist or is not a folder: check the path"
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError) as error:
        UnannotatedDataset(tmp_path / "empty")
    assert str(error.value) == (
        f"image folder {tmp_path / 'empty'} holds no .jpg/.jpeg/.png files: "
        "point it at the folder that contains the images"
    )


def test_the_transform_is_applied_to_the_resized_image(tmp_path):
    array = rgb(4, 6, 0)
    array[:, :3] = 255
    write_image(tmp_path / "a.png", array)
    flipped = UnannotatedDataset(
        tmp_path, transform=lambda image: image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    )
    assert torch.equal(flipped[0], UnannotatedDataset(tmp_path)[0].flip(2))
    assert flipped[0][0, 0].tolist() == [-1.0] * 3 + [1.0] * 3
    seen = []
    UnannotatedDataset(tmp_path, transform=lambda image: seen.append(image.size) or image, size=2)[0]
    assert seen == [(3, 2)]


def test_a_mask_of_another_size_is_resized_to_its_image(tmp_path):
    images, masks = make_pairs(tmp_path)
    half = np.zeros((4, 6), dtype=np.uint8)
    half[:, :3] = 255
    write_image(masks / "x2.png", half)
    image, mask = SegmentationDataset(images, masks, crop=False)[1]
    assert image.shape == (3, 8, 12) and mask.shape == (8, 12)
    assert mask[0].tolist() == [1] * 6 + [0] * 6


def test_missing_folder_and_empty_folder_are_reported(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        UnannotatedDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("")
    with pytest.raises(ValueError, match="holds no"):
        UnannotatedDataset(tmp_path / "empty")
    images, _ = make_pairs(tmp_path)
    with pytest.raises(ValueError, match="mask folder .*empty"):
        SegmentationDataset(images, tmp_path / "empty")


def test_images_without_masks_are_listed(tmp_path):
    images, masks = make_pairs(tmp_path)
    write_image(images / "lonely.png", rgb(4, 4, 0))
    with pytest.raises(ValueError, match=r"1 of 3 images .*lonely"):
        SegmentationDataset(images, masks)


def test_the_first_five_images_without_masks_are_named(tmp_path):
    images, masks = make_pairs(tmp_path)
    for name in "abcdef":
        write_image(images / f"{name}.png", rgb(4, 4, 0))
    with pytest.raises(InputError) as error:
        SegmentationDataset(images, masks)
    assert str(error.value) == (
        f"6 of 8 images in {images} have no mask of the same name in {masks} (e.g. a, b, c, d, e): "
        "add the masks or remove those images"
    )


@pytest.mark.parametrize("what", ["image", "mask"])
def test_ambiguous_names_are_reported_with_their_folder(tmp_path, what):
    images, masks = make_pairs(tmp_path)
    folder = {"image": images, "mask": masks}[what]
    first = {"image": images / "nested" / "x1.png", "mask": masks / "x1.png"}[what]
    write_image(folder / "again" / "x1.jpg", np.zeros((10, 6), dtype=np.uint8))
    with pytest.raises(InputError) as error:
        SegmentationDataset(images, masks)
    assert str(error.value) == (
        f"{what} folder {folder} holds two files named 'x1' ({folder / 'again' / 'x1.jpg'} and {first}): "
        "images and masks are paired by file name, so names must be unique"
    )


def test_a_smaller_mask_is_resized_bilinearly_before_the_threshold(tmp_path):
    write_image(tmp_path / "images" / "a.png", rgb(1, 16, 0))
    write_image(tmp_path / "masks" / "a.png", np.array([[255, 0, 0, 255]], np.uint8))
    # Bilinear gives 159/255 = 0.62 at columns 3 and 12, bicubic 173/255 = 0.68: a threshold between tells.
    mask = SegmentationDataset(tmp_path / "images", tmp_path / "masks", crop=False, mask_thr=0.65)[0][1]
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
