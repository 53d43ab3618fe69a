"""self_train.py: rounds of labelling, keeping by the documented rule and training, resumable; the
demo's unlabeled images come without masks; the supervised reference's seeds are its own."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import self_train
from data import SegmentationDataset
from demo.world import SEED_RANGES, ensure_folder, render_sample, write_pairs
from self_train import LabelRule, PairStream
from UNet.unet_model import UNet
from utils.errors import InputError


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """World images without masks, a labelled folder, and a small U-Net fitted to a few world pairs."""
    root = tmp_path_factory.mktemp("self_train")
    ensure_folder(root / "unlabeled", range(100, 124), labelled=False)
    write_pairs(root / "val", range(200, 206))
    pairs = list(SegmentationDataset(*write_pairs(root / "fit", range(300, 332))))
    images, masks = torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])
    torch.manual_seed(0)
    model = UNet(base_width=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), masks).backward()
        optimizer.step()
    torch.save(model.state_dict(), root / "teacher.pth")
    return root


def arguments(inputs, out, *extra: str) -> list[str]:
    flags = ["--unet", str(inputs / "teacher.pth"), "--images", str(inputs / "unlabeled/images")]
    flags += ["--out", str(out), "--unet_width", "4", "--n_steps", "4", "--batch_size", "4"]
    flags += ["--val_images_dirs", str(inputs / "val/images"), "--val_masks_dirs", str(inputs / "val/masks")]
    flags += ["--val_resize_to", "none", "--steps_per_log", "2", "--steps_per_validation", "2"]
    flags += ["--steps_per_checkpoint_save", "2", "--device", "cpu", "--min_margin", "0.2"]
    return [*flags, *extra]


def test_each_round_labels_keeps_trains_and_a_rerun_skips_it(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    score = self_train.main(
        arguments(inputs, out, "--rounds", "2", "--min_margin", "0", "--mask_size_up", "1.01")
    )
    for number in (1, 2):
        folder = out / f"round_{number}"
        assert {"segmentation.pth", "score.json", "pseudo_labels.json", "tensorboard"} <= {
            p.name for p in folder.iterdir()
        }
        labels = self_train.json.loads((folder / "pseudo_labels.json").read_text())
        assert labels["images"] == 24 == sum(labels[k] for k in ("kept", "unsure", "empty", "too large"))
        assert labels["kept"] > 0
    assert (out / "segmentation.pth").read_bytes() == (out / "round_2/segmentation.pth").read_bytes()
    assert set(score) == {"val", "pseudo_labels", "wall_time_s"} and 0 <= score["val"]["thr"]["IoU"] <= 1
    assert score["wall_time_s"] > 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.pth")}
    capsys.readouterr()
    self_train.main(arguments(inputs, out, "--rounds", "2", "--min_margin", "0", "--mask_size_up", "1.01"))
    printed = capsys.readouterr().out
    assert "round 1: done earlier" in printed and "round 2: done earlier" in printed
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.pth")} == before


def test_the_label_rule_keeps_sure_masks_the_gan_filters_would_keep():
    rule = LabelRule(min_margin=0.8, max_area=0.5, connected_components=True)
    sure = torch.full((16, 16), 0.02)
    sure[4:10, 4:10] = 0.98
    sure[14, 14] = 0.98  # a speck, removed as from the GAN's masks
    mask, verdict = rule.verdict(sure)
    assert verdict == "kept" and mask.sum() == 36 and mask[14, 14] == 0
    assert rule.verdict(torch.full((16, 16), 0.6))[1] == "unsure"
    assert rule.verdict(torch.full((16, 16), 0.01))[1] == "empty"
    assert rule.verdict(torch.full((16, 16), 0.99))[1] == "too large"


def test_a_share_of_each_batch_comes_from_the_gan():
    images, masks = torch.zeros(5, 3, 8, 8), torch.zeros(5, 8, 8, dtype=torch.long)
    gan_batch = (torch.ones(2, 3, 8, 8), torch.ones(2, 8, 8, dtype=torch.long))

    class Gan:
        p = SimpleNamespace(batch_size=2)

        def __call__(self):
            return gan_batch

    stream = PairStream(images, masks, 6, torch.Generator().manual_seed(0), "cpu", Gan())
    batch_images, batch_masks = stream()
    assert batch_images.shape == (6, 3, 8, 8)
    assert batch_images[:4].eq(0).all() and batch_images[4:].eq(1).all() and batch_masks[4:].eq(1).all()


def test_the_demo_unlabeled_folder_holds_images_and_no_masks(tmp_path):
    images = ensure_folder(tmp_path / "unlabeled", range(7, 10), labelled=False)[0]
    assert sorted(p.name for p in (tmp_path / "unlabeled").iterdir()) == ["images"]
    written = np.asarray(self_train.UnannotatedDataset(images)[0])
    expected = render_sample(7)[0].transpose(2, 0, 1) * 2 - 1
    assert np.abs(written - expected).max() <= 1 / 255 + 1e-6


def test_the_demo_seed_ranges_are_disjoint():
    ranges = [getattr(SEED_RANGES, name) for name in SEED_RANGES.__dataclass_fields__]
    assert len(ranges) == 5
    for first, second in itertools.combinations(ranges, 2):
        assert (
            first.stop <= second.start
            or second.stop <= first.start
            or (first is SEED_RANGES.gan_training or second is SEED_RANGES.gan_training)
        )
    assert SEED_RANGES.unlabeled.start >= SEED_RANGES.gan_training.start
    assert SEED_RANGES.unlabeled.stop <= SEED_RANGES.gan_training.stop  # the domain the GAN learnt
    labelled = [SEED_RANGES.validation, SEED_RANGES.test, SEED_RANGES.supervised, SEED_RANGES.gan_training]
    for first, second in itertools.combinations(labelled, 2):
        assert first.stop <= second.start or second.stop <= first.start


def test_bad_flags_are_named(inputs, tmp_path):
    with pytest.raises(InputError, match="give --unet"):
        self_train.main(["--images", str(inputs / "unlabeled/images"), "--out", str(tmp_path)])
    with pytest.raises(InputError, match="--min_margin.*must be from 0 to 1"):
        self_train.main(arguments(inputs, tmp_path / "run", "--min_margin", "2"))
    with pytest.raises(InputError, match="no pseudo-label passed the rule"):
        self_train.main(arguments(inputs, tmp_path / "run", "--min_margin", "1"))
