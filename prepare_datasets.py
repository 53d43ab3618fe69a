"""Fetch the paper's benchmark datasets from their official sites and lay them out as the scripts read them.

    python prepare_datasets.py ecssd duts-te dut-omron cub flowers [--root datasets]
    python prepare_datasets.py duts-tr            # DUTS-TR's images only (embeddings, self-training)
    python prepare_datasets.py cub --split official

Each name becomes `ROOT/<name>/images/` beside `ROOT/<name>/masks/` (binary 0/255 PNGs of the image's
stem and size): the test images of the split the paper used, which `train_segmentation.py
--val_images_dirs`, `evaluate.py` and `reproduce.py` read. CUB and Flowers also get their training
images in `ROOT/<name>/train/images/`. Archives are kept in `ROOT/downloads/`, fetched by the rule of
download_all.sh (a `.part` continued on a rerun, checked, then renamed); a folder is built in
`ROOT/.<name>.partial/` and renamed only once its counts are the published ones, so a failed run leaves
nothing but its checked downloads. The sources, checksums, splits and mask rules of each dataset are in
docs/datasets.md.
"""

import argparse
import fnmatch
import io
import json
import os
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io
from PIL import Image

from data import mask_gray
from utils.cli import add_debug_flag, run_cli
from utils.download import Remote, fetch, file_digest
from utils.errors import InputError
from utils.progress import progress_bar

MIRROR_VARIABLE = "BGW_DATASETS_MIRROR"
REPORT = "prepared.json"  # in each prepared folder: what it holds and where it came from
SPLITS = ("paper", "official")
MASK_LEVEL = 128  # foreground from this gray level up: data.py's `>= 0.5` of full scale
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Files:
    """Where one kind of file lies: the archive, an fnmatch pattern of the member's folder, suffixes."""

    archive: str
    folder: str
    suffixes: tuple[str, ...] = IMAGE_SUFFIXES

    def holds(self, archive: str, member: str) -> bool:
        path = PurePosixPath(member)
        return (
            archive == self.archive
            and path.suffix.lower() in self.suffixes
            and fnmatch.fnmatchcase(str(path.parent), self.folder)
        )


@dataclass(frozen=True)
class Member:
    """One small file a split reads: the archive (or the file itself) and an fnmatch pattern of its path."""

    archive: str
    path: str

    def holds(self, archive: str, member: str) -> bool:
        return archive == self.archive and fnmatch.fnmatchcase(member, self.path)


@dataclass(frozen=True)
class Split:
    """The stems of the test images (the folder's pairs) and of the training images."""

    test: list[str]
    train: list[str]


def _no_split(meta: dict[str, bytes], stems: list[str], split: str) -> Split:
    return Split(test=stems, train=[])


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # the official page
    remotes: tuple[Remote, ...]
    images: Files
    masks: Files | None  # None: images only
    counts: dict[str, tuple[int, int]]  # split -> the published (test, train) counts
    meta: dict[str, Member] = field(default_factory=dict)  # small files the split reads
    split: Callable[[dict[str, bytes], list[str], str], Split] = _no_split
    level: Callable[[Image.Image], Image.Image] = mask_gray  # a mask's foreground level, 'L'
    image_stem: Callable[[str], str] = lambda mask_stem: mask_stem  # of a mask's stem


def _cub_split(meta: dict[str, bytes], stems: list[str], split: str) -> Split:
    """CUB's `images.txt` (`<id> <class>/<file>.jpg`) names each id; the paper's split is ReDO's
    `train_val_test_split.txt` (`<id> <0 train | 1 validation | 2 test>`), the official one
    `train_test_split.txt` (`<id> <1 train | 0 test>`)."""
    names = dict(line.split() for line in meta["images"].decode().splitlines() if line.strip())
    stem_of = {image_id: PurePosixPath(name).stem for image_id, name in names.items()}
    if split == "paper":
        roles = {"0": "train", "2": "test"}  # ReDO's validation images (1) are in neither folder
        table = meta["redo_split"]
    else:
        roles = {"1": "train", "0": "test"}
        table = meta["official_split"]
    assigned: dict[str, list[str]] = {"train": [], "test": []}
    for line in table.decode().splitlines():
        if line.strip():
            image_id, value = line.split()
            if value in roles:
                assigned[roles[value]].append(stem_of[image_id])
    return Split(test=sorted(assigned["test"]), train=sorted(assigned["train"]))


def _flowers_split(meta: dict[str, bytes], stems: list[str], split: str) -> Split:
    """`setid.mat` holds 1-based image numbers: `trnid`, `valid` (1,020 each) and `tstid` (6,149). The
    GAN segmentation line of work (ReDO, then the paper) trains on `tstid` and tests on `trnid`."""
    ids = scipy.io.loadmat(io.BytesIO(meta["setid"]))
    stems_of = {key: sorted(f"image_{int(i):05d}" for i in np.ravel(ids[key])) for key in ("trnid", "tstid")}
    if split == "paper":
        return Split(test=stems_of["trnid"], train=stems_of["tstid"])
    return Split(test=stems_of["tstid"], train=stems_of["trnid"])


def _flowers_level(mask: Image.Image) -> Image.Image:
    """The segmentations (JPEGs) paint the background blue, (0, 0, 254), and keep the flower's colours.
    ReDO's rule, which the paper's comparison rests on: background where R == 0 or G == 0 or B == 254
    (any one; JPEG's noise leaves the blue's zeros at the flower's edge more often than all three)."""
    rgb = np.asarray(mask.convert("RGB"))
    background = (rgb[..., 0] == 0) | (rgb[..., 1] == 0) | (rgb[..., 2] == 254)
    return Image.fromarray(np.where(background, 0, 255).astype(np.uint8))


# Addresses and checksums, with their sources (docs/datasets.md has the details). Where a checksum is
# given it is the one a well-known loader records; where none is, nobody publishes one, and the archive
# is checked by reading it through and by the published counts, and its sha256 goes to prepared.json.
CUHK = "https://www.cse.cuhk.edu.hk/leojia/projects/hsaliency/data/ECSSD"  # mmsegmentation's ecssd.py
DUTS = "http://saliencydetection.net/duts/download"  # mmsegmentation's duts.py
OMRON = "http://saliencydetection.net/dut-omron/download"  # mmsegmentation's dut_omron.py
CALTECH = "https://data.caltech.edu/records"  # tensorflow_datasets' caltech_birds.py
# sha256s of tensorflow_datasets' url_checksums (caltech_birds2011.txt, oxford_flowers102.txt); the
# first is also torchvision's (prototype cub200.py), whose md5 97eceeb196236b17998738112f37df78 agrees.
CUB_SHA256 = "sha256:0c685df5597a8b24909f6a7c9db6d11e008733779a671760afef78feb49bf081"
CUB_SEGMENTATIONS_SHA256 = "sha256:dc77f6cffea0cbe2e41d4201115c8f29a6320ecb04fffd2444f51b8066e4b84f"
OXFORD = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102"
FLOWERS_SHA256 = "sha256:2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246"
SETID_SHA256 = "sha256:46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd"
# ReDO's split (mickaelChen/ReDO, datasplits/cub/, unchanged since 93e4a6e), pinned; sha256 of its bytes.
REDO = "https://raw.githubusercontent.com/mickaelChen/ReDO/d6542528ca97c5c533694c4095ba003cb7a95d4c"
REDO_SPLIT = f"{REDO}/datasplits/cub/train_val_test_split.txt"
REDO_SPLIT_SHA256 = "sha256:7620961c0d472a9721d9f2e5541a6dba2a6009e21caadb3861c5c7b64270764c"

DATASETS = {
    dataset.name: dataset
    for dataset in [
        Dataset(
            "ecssd",
            "https://www.cse.cuhk.edu.hk/leojia/projects/hsaliency/dataset.html",
            (
                Remote(f"{CUHK}/images.zip", "images.zip"),
                Remote(f"{CUHK}/ground_truth_mask.zip", "ground_truth_mask.zip"),
            ),
            images=Files("images.zip", "*images"),
            masks=Files("ground_truth_mask.zip", "*ground_truth_mask"),
            counts={"paper": (1000, 0)},
        ),
        Dataset(
            "duts-te",
            "http://saliencydetection.net/duts/",
            (Remote(f"{DUTS}/DUTS-TE.zip", "DUTS-TE.zip"),),
            images=Files("DUTS-TE.zip", "*DUTS-TE-Image"),
            masks=Files("DUTS-TE.zip", "*DUTS-TE-Mask"),
            counts={"paper": (5019, 0)},
        ),
        Dataset(
            "duts-tr",
            "http://saliencydetection.net/duts/",
            (Remote(f"{DUTS}/DUTS-TR.zip", "DUTS-TR.zip"),),
            images=Files("DUTS-TR.zip", "*DUTS-TR-Image"),
            masks=None,
            counts={"paper": (10553, 0)},
        ),
        Dataset(
            "dut-omron",
            "http://saliencydetection.net/dut-omron/",
            (
                Remote(f"{OMRON}/DUT-OMRON-image.zip", "DUT-OMRON-image.zip"),
                Remote(f"{OMRON}/DUT-OMRON-gt-pixelwise.zip.zip", "DUT-OMRON-gt-pixelwise.zip.zip"),
            ),
            images=Files("DUT-OMRON-image.zip", "*DUT-OMRON-image"),
            masks=Files("DUT-OMRON-gt-pixelwise.zip.zip", "*pixelwiseGT-new-PNG"),
            counts={"paper": (5168, 0)},
        ),
        Dataset(
            "cub",
            "https://www.vision.caltech.edu/datasets/cub_200_2011/",
            (
                Remote(
                    f"{CALTECH}/65de6-vp158/files/CUB_200_2011.tgz?download=1", "CUB_200_2011.tgz", CUB_SHA256
                ),
                Remote(
                    f"{CALTECH}/w9d68-gec53/files/segmentations.tgz?download=1",
                    "segmentations.tgz",
                    CUB_SEGMENTATIONS_SHA256,
                ),
                Remote(REDO_SPLIT, "train_val_test_split.txt", REDO_SPLIT_SHA256),
            ),
            images=Files("CUB_200_2011.tgz", "*CUB_200_2011/images/*"),
            masks=Files("segmentations.tgz", "*segmentations/*"),
            counts={"paper": (1000, 10000), "official": (5794, 5994)},
            meta={
                "images": Member("CUB_200_2011.tgz", "*CUB_200_2011/images.txt"),
                "official_split": Member("CUB_200_2011.tgz", "*CUB_200_2011/train_test_split.txt"),
                "redo_split": Member("train_val_test_split.txt", "train_val_test_split.txt"),
            },
            split=_cub_split,
        ),
        Dataset(
            "flowers",
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
            (
                Remote(f"{OXFORD}/102flowers.tgz", "102flowers.tgz", FLOWERS_SHA256),
                Remote(f"{OXFORD}/102segmentations.tgz", "102segmentations.tgz"),
                Remote(f"{OXFORD}/setid.mat", "setid.mat", SETID_SHA256),
            ),
            images=Files("102flowers.tgz", "*jpg"),
            masks=Files("102segmentations.tgz", "*segmim"),
            counts={"paper": (1020, 6149), "official": (6149, 1020)},
            meta={"setid": Member("setid.mat", "setid.mat")},
            split=_flowers_split,
            level=_flowers_level,
            image_stem=lambda mask_stem: mask_stem.replace("segmim_", "image_"),
        ),
    ]
}


class DamagedArchiveError(InputError):
    """An archive that cannot be read to its end."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path} is damaged ({reason})")
        self.path = path


def _is_resource_fork(member: str) -> bool:
    """macOS's `__MACOSX/` copies and `._name` files, which some of the archives carry."""
    path = PurePosixPath(member)
    return "__MACOSX" in path.parts or path.name.startswith("._")


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[str, bytes]]:
    for info in archive.infolist():
        if info.is_dir() or _is_resource_fork(info.filename):
            continue
        if info.filename.lower().endswith(".zip"):  # DUT-OMRON's masks: a zip inside the zip
            yield from _zip_members(zipfile.ZipFile(io.BytesIO(archive.read(info))))
        else:
            yield info.filename, archive.read(info)


def archive_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """(path inside, content) of every regular file of a zip or tar archive, nested zips opened, macOS
    resource forks left out; a file that is no archive is its one member. Raises `DamagedArchiveError`."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                yield from _zip_members(archive)
        elif path.name.endswith((".tgz", ".tar.gz", ".tar")):
            with tarfile.open(path) as archive:
                for member in archive:
                    if member.isfile() and not _is_resource_fork(member.name):
                        yield member.name, archive.extractfile(member).read()
        else:
            yield path.name, path.read_bytes()
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as error:
        raise DamagedArchiveError(path, str(error)) from None


@dataclass
class Collected:
    """What the archives hold for a dataset, written under the staging folder."""

    images: dict[str, Path] = field(default_factory=dict)  # stem -> file
    masks: dict[str, Path] = field(default_factory=dict)  # the image's stem -> mask file
    meta: dict[str, bytes] = field(default_factory=dict)


def _keep(files: dict[str, Path], stem: str, member: str, content: bytes, folder: Path) -> None:
    name = PurePosixPath(member).name
    if stem in files:
        raise InputError(f"two files of the archives have the stem {stem!r}: {files[stem].name} and {name}")
    files[stem] = folder / name
    files[stem].write_bytes(content)


def collect(dataset: Dataset, archives: dict[str, Path], staging: Path) -> Collected:
    """Every image and mask of the dataset written to `staging/all/`, and its split files read."""
    collected = Collected()
    image_folder, mask_folder = staging / "all" / "images", staging / "all" / "masks"
    image_folder.mkdir(parents=True)
    mask_folder.mkdir()
    for remote in dataset.remotes:
        members = archive_members(archives[remote.name])
        for member, content in progress_bar(members, desc=f"reading {remote.name}", unit=" files"):
            stem = PurePosixPath(member).stem
            if dataset.images.holds(remote.name, member):
                _keep(collected.images, stem, member, content, image_folder)
            elif dataset.masks is not None and dataset.masks.holds(remote.name, member):
                _keep(collected.masks, dataset.image_stem(stem), member, content, mask_folder)
            for key, wanted in dataset.meta.items():
                if wanted.holds(remote.name, member):
                    collected.meta[key] = content
    missing = [key for key in dataset.meta if key not in collected.meta]
    if missing:
        raise InputError(f"the archives of {dataset.name} lack {', '.join(missing)}: not the published ones?")
    return collected


def binary_mask(level: Image.Image, size: tuple[int, int]) -> Image.Image:
    """0/255 'L' mask of `size`: a mask of another size is resized (bilinear) before its threshold, the
    rule data.py applies to such pairs when it reads them."""
    if level.size != size:
        level = level.resize(size, Image.Resampling.BILINEAR)
    return Image.fromarray(np.where(np.asarray(level) >= MASK_LEVEL, 255, 0).astype(np.uint8))


def _check_count(what: str, found: int, published: int) -> None:
    if found != published:
        raise InputError(f"the archives give {found:,} {what} where the published count is {published:,}")


def build(dataset: Dataset, split: str, collected: Collected, staging: Path) -> dict:
    """Lay out the split's test pairs and training images in `staging`; what it holds, for the report."""
    chosen = dataset.split(collected.meta, sorted(collected.images), split)
    test_count, train_count = dataset.counts[split]
    absent = [stem for stem in chosen.test + chosen.train if stem not in collected.images]
    if absent:
        raise InputError(f"the split names {len(absent):,} images the archives lack, e.g. {absent[:3]}")
    _check_count("test images" if dataset.masks else "images", len(chosen.test), test_count)
    _check_count("training images", len(chosen.train), train_count)
    (staging / "images").mkdir()
    resized = []
    if dataset.masks is not None:
        unmasked = [stem for stem in chosen.test if stem not in collected.masks]
        if unmasked:
            raise InputError(
                f"{len(unmasked):,} test images have no mask in the archives, e.g. {unmasked[:3]}"
            )
        (staging / "masks").mkdir()
        for stem in progress_bar(chosen.test, desc=f"{dataset.name} masks", unit=" masks"):
            with Image.open(collected.images[stem]) as image, Image.open(collected.masks[stem]) as mask:
                image.load()
                mask.load()
                if mask.size != image.size:
                    resized.append(
                        f"{stem}: mask {mask.size[0]}x{mask.size[1]}, image {image.size[0]}x{image.size[1]}"
                    )
                binary_mask(dataset.level(mask), image.size).save(staging / "masks" / f"{stem}.png")
    for stem in chosen.test:
        collected.images[stem].rename(staging / "images" / collected.images[stem].name)
    if chosen.train:
        (staging / "train" / "images").mkdir(parents=True)
        for stem in chosen.train:
            collected.images[stem].rename(staging / "train" / "images" / collected.images[stem].name)
    shutil.rmtree(staging / "all")
    return {
        "split": split,
        "test_pairs" if dataset.masks else "images": len(chosen.test),
        "train_images": len(chosen.train),
        "resized_masks": resized,
    }


def _file_count(folder: Path) -> int:
    return sum(1 for path in folder.iterdir() if path.is_file()) if folder.is_dir() else 0


def check_prepared(folder: Path, split: str) -> str:
    """What a folder made earlier holds, when it is whole and of `split`; raises `InputError` saying
    what to do when it is another split, damaged, or not one of this script's."""
    report_path = folder / REPORT
    if not report_path.is_file():
        raise InputError(
            f"{folder} exists but has no {REPORT}: it was not made by prepare_datasets.py; move it away "
            "(or pass another --root) and rerun"
        )
    report = json.loads(report_path.read_text())
    if report["split"] != split:
        raise InputError(
            f"{folder} holds the {report['split']} split, not --split {split}: pass another --root for it"
        )
    expected = {
        "images": report.get("test_pairs", report.get("images")),
        "masks": report.get("test_pairs", 0),
        "train/images": report["train_images"],
    }
    for subfolder, count in expected.items():
        found = _file_count(folder / subfolder)
        if found != count:
            raise InputError(
                f"{folder / subfolder} holds {found:,} files where {report_path} records {count:,}: it is "
                "damaged; delete the folder and rerun (the checked downloads are kept)"
            )
    return f"{expected['images']:,} images" + (" and masks" if expected["masks"] else "") + f", split {split}"


def prepare(dataset: Dataset, root: Path, split: str = "paper", mirror: str | None = None) -> Path:
    """`root/<name>`, made from the dataset's checked downloads unless a whole one is there already."""
    folder = root / dataset.name
    if folder.exists():
        print(f"have {folder}: {check_prepared(folder, split)}; nothing to do")
        return folder
    archives = {}
    for remote in dataset.remotes:
        archives[remote.name], _ = fetch(remote, root / "downloads", mirror)
    staging = root / f".{dataset.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)  # an interrupted run's
    try:
        collected = collect(dataset, archives, staging)
        report = build(dataset, split, collected, staging)
    except DamagedArchiveError as error:
        shutil.rmtree(staging, ignore_errors=True)
        error.path.unlink()
        raise InputError(f"{error}: it was deleted; rerun to download it again") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report = {
        "dataset": dataset.name,
        "source": dataset.source,
        **report,
        "archives": [
            {"name": remote.name, "url": remote.url, "sha256": file_digest(archives[remote.name], "sha256")}
            for remote in dataset.remotes
        ],
    }
    (staging / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    os.replace(staging, folder)
    for line in report["resized_masks"]:
        print(f"  mask resized to its image's size: {line}")
    print(f"made {folder}: {check_prepared(folder, split)}")
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="+", choices=DATASETS, metavar="NAME", help=", ".join(DATASETS))
    parser.add_argument(
        "--root", type=Path, default=Path("datasets"), help="where the folders go (default: datasets)"
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="paper",
        help="cub and flowers: the paper's test split (default) or the official one; docs/datasets.md",
    )
    parser.add_argument(
        "--mirror",
        default=os.environ.get(MIRROR_VARIABLE),
        help=f"a URL prefix or folder holding the archives by name (default: ${MIRROR_VARIABLE}, else "
        "the official sites)",
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for name in dict.fromkeys(args.names):
        dataset = DATASETS[name]
        prepare(dataset, args.root, args.split if len(dataset.counts) > 1 else "paper", args.mirror)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
