"""prepare_datasets.py on fabricated archives of the documented layouts, served from 127.0.0.1: the
folders and counts of all six datasets, reruns that fetch nothing, and bad downloads and archives
refused with nothing left behind."""

import http.server
import io
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import prepare_datasets
from data import SegmentationDataset
from tests import dataset_archives
from tests.local_server import free_port
from utils.errors import InputError, UserError

REPOSITORY = Path(__file__).resolve().parents[1]
NAMES = list(prepare_datasets.DATASETS)


@pytest.fixture
def mirror(tmp_path) -> Path:
    return dataset_archives.publish(tmp_path / "mirror")


@pytest.fixture
def fabricated(mirror, monkeypatch) -> dict[str, prepare_datasets.Dataset]:
    """The registry with the fabricated archives' counts and checksums."""
    datasets = dataset_archives.fabricated_datasets(mirror)
    monkeypatch.setattr(prepare_datasets, "DATASETS", datasets)
    return datasets


def offline() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def files_under(root: Path) -> dict[str, float]:
    return {path.relative_to(root).as_posix(): path.stat().st_mtime_ns for path in root.rglob("*")}


def stems(folder: Path) -> list[str]:
    return sorted(path.stem for path in folder.iterdir())


def test_the_six_datasets_get_the_documented_folders_and_counts(tmp_path, mirror, fabricated, serve):
    root = tmp_path / "datasets"
    prepare_datasets.main([*NAMES, "--root", str(root), "--mirror", serve(mirror)])
    assert sorted(path.name for path in root.iterdir()) == sorted([*NAMES, "downloads"])
    for name, (test_count, train_count) in ((n, dataset_archives.COUNTS[n]["paper"]) for n in NAMES):
        folder = root / name
        assert len(stems(folder / "images")) == test_count
        assert (
            len(stems(folder / "train" / "images")) == train_count
            if train_count
            else not (folder / "train").exists()
        )
        if name == "duts-tr":
            assert not (folder / "masks").exists()
            continue
        assert stems(folder / "masks") == stems(folder / "images")
        for image_path in (folder / "images").iterdir():
            mask = Image.open(folder / "masks" / f"{image_path.stem}.png")
            assert mask.mode == "L" and mask.size == Image.open(image_path).size
            assert set(np.unique(np.asarray(mask))) == {0, 255}
        assert len(SegmentationDataset(folder / "images", folder / "masks")) == test_count
    report = (root / "duts-te" / prepare_datasets.REPORT).read_text()
    assert f"{dataset_archives.MISMATCHED}: mask 16x24, image 24x16" in report


def test_images_are_kept_as_published_and_masks_follow_each_dataset_rule(tmp_path, mirror, fabricated, serve):
    root = tmp_path / "datasets"
    prepare_datasets.main(["cub", "flowers", "duts-te", "--root", str(root), "--mirror", serve(mirror)])
    published = dataset_archives.jpeg(40 + 1)  # CUB's second image, a test image of ReDO's split
    assert (root / "cub/images/Black_Footed_Albatross_0009_34.jpg").read_bytes() == published
    square = dataset_archives.square_mask() == 255
    # CUB's soft masks (51 outside, 204 inside, one pixel 102): foreground from half of full scale.
    assert np.array_equal(
        np.asarray(Image.open(root / "cub/masks/Black_Footed_Albatross_0009_34.png")) == 255, square
    )
    # Flowers: ReDO's rule on the decoded JPEG; its ringing at the flower's edge moves a few pixels.
    flower = np.asarray(Image.open(root / "flowers/masks/image_00002.png")) == 255
    decoded = Image.open(io.BytesIO(dataset_archives.flowers_segmentation()))
    assert np.array_equal(flower, np.asarray(prepare_datasets._flowers_level(decoded)) == 255)
    assert (flower == square).mean() > 0.95
    # The DUTS-TE mask of another size is resized to its image's before its threshold.
    resized = np.asarray(Image.open(root / f"duts-te/masks/{dataset_archives.MISMATCHED}.png"))
    assert resized.shape == (16, 24) and 0 < (resized == 255).mean() < 1


def test_the_splits_are_the_papers_unless_official_is_asked_for(tmp_path, mirror, fabricated, serve):
    url = serve(mirror)
    prepare_datasets.main(["cub", "flowers", "--root", str(tmp_path / "paper"), "--mirror", url])
    prepare_datasets.main(
        ["cub", "flowers", "--root", str(tmp_path / "official"), "--split", "official", "--mirror", url]
    )
    cub = [Path(name).stem for name in dataset_archives.CUB_IMAGES]
    paper, official = tmp_path / "paper", tmp_path / "official"
    assert stems(paper / "cub/images") == sorted(cub[i] for i in (1, 5))  # ReDO's 2 (test)
    assert stems(paper / "cub/train/images") == sorted(
        cub[i] for i in (0, 2, 4)
    )  # ReDO's 0; its 1 in neither
    assert stems(official / "cub/images") == sorted(cub[i] for i in (1, 3, 5))  # is_training_image 0
    assert stems(paper / "flowers/images") == ["image_00002", "image_00005"]  # trnid
    assert stems(paper / "flowers/train/images") == ["image_00003", "image_00004", "image_00006"]  # tstid
    assert stems(official / "flowers/images") == ["image_00003", "image_00004", "image_00006"]
    with pytest.raises(InputError, match="holds the paper split, not --split official: pass another --root"):
        prepare_datasets.main(["cub", "--root", str(paper), "--split", "official", "--mirror", url])


def test_a_second_run_fetches_nothing_and_says_so(tmp_path, mirror, fabricated, serve, capsys):
    root = tmp_path / "datasets"
    prepare_datasets.main([*NAMES, "--root", str(root), "--mirror", serve(mirror)])
    before = files_under(root)
    capsys.readouterr()
    prepare_datasets.main([*NAMES, "--root", str(root), "--mirror", offline()])
    assert files_under(root) == before
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"have {root / name}: {prepare_datasets.check_prepared(root / name, 'paper')}; nothing to do"
        for name in NAMES
    ]
    assert lines[0].endswith("3 images and masks, split paper; nothing to do")


def test_an_interrupted_preparation_refetches_nothing(tmp_path, mirror, fabricated, serve):
    """The checked downloads outlive a failed step; the next run builds from them."""
    root = tmp_path / "datasets"
    url = serve(mirror)
    ecssd = fabricated["ecssd"]
    prepare_datasets.DATASETS["ecssd"] = replace(ecssd, counts={"paper": (4, 0)})
    with pytest.raises(InputError, match="the archives give 3 test images where the published count is 4"):
        prepare_datasets.main(["ecssd", "--root", str(root), "--mirror", url])
    assert sorted(files_under(root)) == [
        "downloads",
        "downloads/ground_truth_mask.zip",
        "downloads/images.zip",
    ]
    prepare_datasets.DATASETS["ecssd"] = ecssd
    prepare_datasets.main(["ecssd", "--root", str(root), "--mirror", offline()])
    assert len(stems(root / "ecssd/masks")) == 3


def test_a_corrupt_archive_is_refused_and_nothing_is_left_behind(tmp_path, mirror, fabricated, serve):
    """Where no checksum is published the archive is checked by reading it to its end."""
    archive = mirror / "DUTS-TE.zip"
    archive.write_bytes(archive.read_bytes()[:-100])
    prepare_datasets.DATASETS["duts-te"] = replace(
        fabricated["duts-te"], remotes=tuple(replace(r, checksum=None) for r in fabricated["duts-te"].remotes)
    )
    root = tmp_path / "datasets"
    with pytest.raises(
        InputError, match=r"DUTS-TE.zip is damaged \(.*\): it was deleted; rerun to download it again"
    ):
        prepare_datasets.main(["duts-te", "--root", str(root), "--mirror", serve(mirror)])
    assert sorted(files_under(root)) == ["downloads"]


def test_a_download_that_fails_its_checksum_is_deleted(tmp_path, mirror, fabricated, serve):
    remote = fabricated["flowers"].remotes[2]
    wrong = replace(remote, checksum="md5:" + "0" * 32)
    prepare_datasets.DATASETS["flowers"] = replace(
        fabricated["flowers"], remotes=(*fabricated["flowers"].remotes[:2], wrong)
    )
    root = tmp_path / "datasets"
    with pytest.raises(
        InputError,
        match=r"the download of setid.mat from http://127.0.0.1:\d+/setid.mat was deleted: "
        r".* has md5 \w{32}, not the published 0{32}",
    ):
        prepare_datasets.main(["flowers", "--root", str(root), "--mirror", serve(mirror)])
    assert sorted(files_under(root)) == [
        "downloads",
        "downloads/102flowers.tgz",
        "downloads/102segmentations.tgz",
    ]


def test_offline_is_a_clear_error(tmp_path, fabricated):
    address = offline()
    with pytest.raises(
        UserError,
        match=f"could not download images.zip from {address}/images.zip .*Connection refused.*set a mirror",
    ) as caught:
        prepare_datasets.main(["ecssd", "--root", str(tmp_path / "datasets"), "--mirror", address])
    # Nothing was received: no .part is left, and the message claims none.
    assert not any((tmp_path / "datasets").rglob("*.part")) and "is kept in" not in str(caught.value)


def test_damaged_or_foreign_folders_are_named_and_left_alone(tmp_path, mirror, fabricated, serve):
    root = tmp_path / "datasets"
    prepare_datasets.main(["ecssd", "--root", str(root), "--mirror", serve(mirror)])
    (root / "ecssd/masks/0002.png").unlink()
    with pytest.raises(
        InputError,
        match=r"ecssd/masks holds 2 files where .*prepared.json records 3: it is damaged; delete the folder "
        "and rerun",
    ):
        prepare_datasets.main(["ecssd", "--root", str(root), "--mirror", offline()])
    (root / "dut-omron").mkdir()
    with pytest.raises(
        InputError, match=r"dut-omron exists but has no prepared.json: it was not made by prepare_datasets.py"
    ):
        prepare_datasets.main(["dut-omron", "--root", str(root), "--mirror", offline()])
    assert sorted(files_under(root / "dut-omron")) == []


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves byte ranges (`Range: bytes=N-`), as the datasets' sites do, and notes each request's."""

    ranges: list[str | None] = []

    def send_head(self):
        requested = self.headers.get("Range")
        RangeHandler.ranges.append(requested)
        if requested is None:
            return super().send_head()
        content = Path(self.translate_path(self.path)).read_bytes()
        start = int(requested.removeprefix("bytes=").rstrip("-"))
        self.send_response(206)
        self.send_header("Content-Length", str(len(content) - start))
        self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
        self.end_headers()
        return io.BytesIO(content[start:])

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("ranges", [True, False], ids=["server-with-ranges", "server-without"])
def test_an_interrupted_download_is_continued(tmp_path, mirror, fabricated, serve, ranges):
    downloads = tmp_path / "datasets" / "downloads"
    downloads.mkdir(parents=True)
    published = (mirror / "images.zip").read_bytes()
    (downloads / "images.zip.part").write_bytes(published[:1000])
    if ranges:
        handler = lambda *a, **k: RangeHandler(*a, directory=str(mirror), **k)  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        RangeHandler.ranges = []
    else:
        url = serve(mirror)
    prepare_datasets.main(["ecssd", "--root", str(tmp_path / "datasets"), "--mirror", url])
    assert (downloads / "images.zip").read_bytes() == published
    assert not (downloads / "images.zip.part").exists()
    if ranges:
        server.shutdown()
        assert RangeHandler.ranges == ["bytes=1000-", None]


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPOSITORY / "prepare_datasets.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_published_checksums_and_counts_are_enforced(tmp_path, mirror, serve):
    """The script's own registry, against archives that are not the published ones."""
    url = serve(mirror)
    result = run_script("flowers", "--root", str(tmp_path / "datasets"), "--mirror", url)
    assert result.returncode == 1
    assert f"error: the download of 102flowers.tgz from {url}/102flowers.tgz was deleted" in result.stderr
    assert f"not the published {prepare_datasets.FLOWERS_SHA256.split(':')[1]}" in result.stderr
    result = run_script("ecssd", "--root", str(tmp_path / "datasets"), "--mirror", url)
    assert result.returncode == 1
    assert "error: the archives give 3 test images where the published count is 1,000" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_name_is_refused_before_anything_is_fetched(tmp_path):
    result = run_script("ecssd", "pascal", "--root", str(tmp_path / "datasets"))
    assert result.returncode == 2 and "invalid choice: 'pascal'" in result.stderr
    assert not (tmp_path / "datasets").exists()


def test_flowers_background_is_any_of_r_0_g_0_b_254_as_redo_reads_it():
    pixels = np.array(
        [[(0, 0, 254), (3, 0, 250), (0, 9, 200), (20, 30, 254), (1, 1, 255), (250, 0, 0), (200, 40, 90)]]
    )
    level = np.asarray(prepare_datasets._flowers_level(Image.fromarray(pixels.astype(np.uint8))))
    assert level.tolist() == [[0, 0, 0, 0, 255, 0, 255]]  # (250, 0, 0): a red flower's pixel, background


@pytest.mark.parametrize("nested", [True, False], ids=["zip-in-zip", "one-zip"])
def test_dut_omron_masks_are_found_in_either_form_of_their_zip(tmp_path, mirror, fabricated, serve, nested):
    dataset_archives.publish_dut_omron_masks(mirror / "DUT-OMRON-gt-pixelwise.zip.zip", nested)
    prepare_datasets.DATASETS["dut-omron"] = dataset_archives.fabricated_datasets(mirror)["dut-omron"]
    root = tmp_path / "datasets"
    prepare_datasets.main(["dut-omron", "--root", str(root), "--mirror", serve(mirror)])
    assert stems(root / "dut-omron/masks") == stems(root / "dut-omron/images") == dataset_archives.DUT_OMRON
