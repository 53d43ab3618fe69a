"""Small archives with the documented layouts of the six benchmark datasets (docs/datasets.md), for
prepare_datasets.py's tests: what the official sites serve, with a few images instead of thousands."""

import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.io
from PIL import Image

import prepare_datasets
from utils.download import file_digest

SIZE = (24, 16)  # width, height of every fabricated image
# The counts of the fabricated archives: split -> (test, train).
COUNTS = {
    "ecssd": {"paper": (3, 0)},
    "duts-te": {"paper": (3, 0)},
    "duts-tr": {"paper": (4, 0)},
    "dut-omron": {"paper": (3, 0)},
    "cub": {"paper": (2, 3), "official": (3, 3)},
    "flowers": {"paper": (2, 3), "official": (3, 2)},
}
MISMATCHED = "ILSVRC2012_test_00000002"
DUT_OMRON = ["im005", "im012", "sun_aabbcc"]  # the DUTS-TE pair whose mask has another size


def jpeg(seed: int, size: tuple[int, int] = SIZE) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def square_mask(size: tuple[int, int] = SIZE, levels: tuple[int, int] = (0, 255)) -> np.ndarray:
    """A centred square of `levels[1]` on `levels[0]`: the fabricated object."""
    mask = np.full((size[1], size[0]), levels[0], np.uint8)
    mask[size[1] // 4 : 3 * size[1] // 4, size[0] // 4 : 3 * size[0] // 4] = levels[1]
    return mask


def flowers_segmentation(size: tuple[int, int] = SIZE) -> bytes:
    """Flowers-102's segmim: the flower's colours kept, the background painted (0, 0, 254), a JPEG."""
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[..., 2] = 254
    rgb[square_mask(size) > 0] = (200, 40, 90)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=100, subsampling=0)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def write_tgz(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))


def publish_dut_omron_masks(path: Path, nested: bool) -> None:
    """The masks' `.zip.zip`: a zip inside a zip as its name says (`nested`), or the masks' folder itself
    as mmsegmentation's converter reads it; a `__MACOSX/` folder of resource forks either way."""
    masks = {f"pixelwiseGT-new-PNG/{stem}.png": png(square_mask()) for stem in DUT_OMRON}
    forks = {f"__MACOSX/pixelwiseGT-new-PNG/._{stem}.png": b"\x00\x05\x16\x07" for stem in DUT_OMRON}
    if nested:
        write_zip(
            path,
            {
                "DUT-OMRON-gt-pixelwise.zip": zip_bytes(masks),
                "__MACOSX/._DUT-OMRON-gt-pixelwise.zip": b"\x00",
            },
        )
    else:
        write_zip(path, masks | forks)


def publish_saliency(mirror: Path) -> None:
    write_zip(mirror / "images.zip", {f"images/{i:04d}.jpg": jpeg(i) for i in (1, 2, 3)})
    write_zip(
        mirror / "ground_truth_mask.zip",
        {f"ground_truth_mask/{i:04d}.png": png(square_mask()) for i in (1, 2, 3)},
    )
    test = [f"ILSVRC2012_test_{i:08d}" for i in (1, 2, 3)]
    members = {f"DUTS-TE/DUTS-TE-Image/{stem}.jpg": jpeg(10 + i) for i, stem in enumerate(test)}
    for stem in test:
        size = SIZE[::-1] if stem == MISMATCHED else SIZE  # the image 24x16, its mask 16x24
        members[f"DUTS-TE/DUTS-TE-Mask/{stem}.png"] = png(square_mask(size))
    write_zip(mirror / "DUTS-TE.zip", members)
    train = [f"ILSVRC2012_test_{i:08d}" for i in (4, 5, 6, 7)]
    members = {f"DUTS-TR/DUTS-TR-Image/{stem}.jpg": jpeg(20 + i) for i, stem in enumerate(train)}
    members |= {f"DUTS-TR/DUTS-TR-Mask/{stem}.png": png(square_mask()) for stem in train}
    write_zip(mirror / "DUTS-TR.zip", members)
    members = {f"DUT-OMRON-image/{stem}.jpg": jpeg(30 + i) for i, stem in enumerate(DUT_OMRON)}
    members |= {
        f"__MACOSX/DUT-OMRON-image/._{stem}.jpg": b"\x00\x05\x16\x07resource fork" for stem in DUT_OMRON
    }
    write_zip(mirror / "DUT-OMRON-image.zip", members)
    publish_dut_omron_masks(mirror / "DUT-OMRON-gt-pixelwise.zip.zip", nested=True)


CUB_IMAGES = [
    "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg",
    "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg",
    "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg",
    "002.Laysan_Albatross/Laysan_Albatross_0003_1033.jpg",
    "200.Common_Yellowthroat/Common_Yellowthroat_0055_190967.jpg",
    "200.Common_Yellowthroat/Common_Yellowthroat_0125_190902.jpg",
]
CUB_OFFICIAL = [1, 0, 1, 0, 1, 0]  # is_training_image: test 3, train 3
CUB_REDO = [0, 2, 0, 1, 0, 2]  # 0 train, 1 validation, 2 test: test 2, train 3


def publish_objects(mirror: Path) -> None:
    members = {f"CUB_200_2011/images/{name}": jpeg(40 + i) for i, name in enumerate(CUB_IMAGES)}
    members["CUB_200_2011/images.txt"] = "".join(f"{i + 1} {n}\n" for i, n in enumerate(CUB_IMAGES)).encode()
    members["CUB_200_2011/train_test_split.txt"] = "".join(
        f"{i + 1} {v}\n" for i, v in enumerate(CUB_OFFICIAL)
    ).encode()
    members["CUB_200_2011/README"] = b"CUB-200-2011\n"
    # The archive holds 8 such RGB copies of gray images, which images.txt does not list (11,796 jpgs).
    members["CUB_200_2011/images/002.Laysan_Albatross/Laysan_Albatross_0002_1027_rgb.jpg"] = jpeg(99)
    write_tgz(mirror / "CUB_200_2011.tgz", members)
    soft = square_mask(levels=(51, 204))  # MTurk workers' agreement in fifths of 255
    soft[0, 0] = 102
    write_tgz(mirror / "segmentations.tgz", {f"segmentations/{n[:-4]}.png": png(soft) for n in CUB_IMAGES})
    (mirror / "train_val_test_split.txt").write_text(
        "".join(f"{i + 1} {v}\n" for i, v in enumerate(CUB_REDO))
    )
    flowers = range(1, 7)
    write_tgz(mirror / "102flowers.tgz", {f"jpg/image_{i:05d}.jpg": jpeg(50 + i) for i in flowers})
    write_tgz(
        mirror / "102segmentations.tgz",
        {f"segmim/segmim_{i:05d}.jpg": flowers_segmentation() for i in flowers},
    )
    ids = {"trnid": np.array([[2, 5]]), "valid": np.array([[1]]), "tstid": np.array([[3, 4, 6]])}
    scipy.io.savemat(mirror / "setid.mat", ids)


def publish(mirror: Path) -> Path:
    """Every archive of the six datasets under its own name in `mirror`."""
    mirror.mkdir(parents=True, exist_ok=True)
    publish_saliency(mirror)
    publish_objects(mirror)
    return mirror


def fabricated_datasets(mirror: Path) -> dict[str, prepare_datasets.Dataset]:
    """The datasets with the fabricated archives' counts and sha256 (as if the sites published them)."""
    datasets = {}
    for name, dataset in prepare_datasets.DATASETS.items():
        remotes = tuple(
            replace(remote, checksum=f"sha256:{file_digest(mirror / remote.name, 'sha256')}")
            for remote in dataset.remotes
        )
        datasets[name] = replace(dataset, remotes=remotes, counts=COUNTS[name])
    return datasets
