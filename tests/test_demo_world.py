"""The demo world, its discriminator and the demo GAN's training, resuming and export."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from BigGAN.gan_load import make_big_gan
from BigGAN.model.BigGAN import Generator
from data import SegmentationDataset
from demo import train_gan, world
from demo.assets import DEMO_GENERATOR_CONFIG
from demo.baselines import all_foreground, centred_ellipse, evaluate_baselines, otsu_border_rule
from demo.discriminator import Discriminator
from demo.world import (
    SEED_RANGES,
    ensure_folder,
    ensure_heldout_folder,
    ensure_validation_folder,
    render_sample,
    write_pairs,
)
from tests.tensorboard_events import logged_steps
from utils.errors import MissingInputError


def test_samples_are_determined_by_the_seed():
    image, mask = render_sample(123)
    again_image, again_mask = render_sample(123)
    other_image, _ = render_sample(124)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(mask, again_mask)
    assert np.abs(image - other_image).mean() > 0.01


def test_samples_have_the_promised_types_and_areas():
    areas, brighter = [], []
    for seed in range(150):
        image, mask = render_sample(seed)
        assert image.shape == (32, 32, 3) and image.dtype == np.float32
        assert mask.shape == (32, 32) and mask.dtype == bool
        assert 0 <= image.min() and image.max() <= 1
        areas.append(mask.mean())
        brighter.append(image[mask].mean() > image[~mask].mean())
    assert min(areas) >= world.MIN_AREA and max(areas) <= world.MAX_AREA
    assert 0.15 < np.mean(areas) < 0.4
    # Neither "object brighter" nor "object darker" may be a shortcut to the mask.
    assert 0.25 < np.mean(brighter) < 0.75


def test_object_differs_from_its_surroundings():
    for seed in range(40):
        image, mask = render_sample(seed)
        ring = np.zeros_like(mask)
        ring[1:-1, 1:-1] = mask[1:-1, 1:-1] & ~(
            mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        )
        inside = image[mask & ~ring].mean(0)
        outside = image[~mask].mean(0)
        assert np.linalg.norm(inside - outside) > 0.05, seed


def test_seed_ranges_are_disjoint():
    ranges = [SEED_RANGES.gan_training, SEED_RANGES.validation, SEED_RANGES.test]
    for index, first in enumerate(ranges):
        for second in ranges[index + 1 :]:
            assert first.stop <= second.start or second.stop <= first.start
    assert len(SEED_RANGES.test) == 500


def test_written_pairs_read_back_as_rendered(tmp_path):
    images_dir, masks_dir = write_pairs(tmp_path, [7, 8])
    assert sorted(p.name for p in images_dir.iterdir()) == ["0000007.png", "0000008.png"]
    image, mask = render_sample(8)
    stored_mask = np.array(Image.open(masks_dir / "0000008.png"))
    assert stored_mask.ndim == 2 and set(np.unique(stored_mask)) <= {0, 255}
    np.testing.assert_array_equal(stored_mask == 255, mask)
    stored_image = np.array(Image.open(images_dir / "0000008.png")).astype(np.float32) / 255
    assert np.abs(stored_image - image).max() <= 0.5 / 255 + 1e-6


def test_folder_is_completed_and_then_reused(tmp_path):
    folder = tmp_path / "pairs"
    images_dir, masks_dir = ensure_folder(folder, range(10, 14))
    assert len(list(images_dir.iterdir())) == len(list(masks_dir.iterdir())) == 4
    stamp = (masks_dir / "0000010.png").stat().st_mtime_ns
    ensure_folder(folder, range(10, 14))
    assert (masks_dir / "0000010.png").stat().st_mtime_ns == stamp
    (masks_dir / "0000012.png").unlink()
    ensure_folder(folder, range(10, 14))
    assert (masks_dir / "0000012.png").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["pairs"]


def test_interrupted_generation_leaves_no_folder(tmp_path, monkeypatch):
    def interrupted(root, seeds):
        (root / "images").mkdir()
        (root / "images" / "0000010.png").write_bytes(b"")
        raise KeyboardInterrupt

    monkeypatch.setattr(world, "write_pairs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_folder(tmp_path / "pairs", range(10, 14))
    assert list(tmp_path.iterdir()) == []


def test_heldout_folder_holds_the_test_range(tmp_path):
    images_dir, masks_dir = ensure_heldout_folder(tmp_path)
    names = sorted(p.name for p in masks_dir.iterdir())
    assert names == [f"{seed:07d}.png" for seed in SEED_RANGES.test]
    assert sorted(p.name for p in images_dir.iterdir()) == names
    assert images_dir.parent == tmp_path / "heldout"


def test_real_batches_are_turned_or_flipped_pool_images():
    pool = torch.from_numpy(np.stack([np.round(render_sample(s)[0] * 255) for s in range(3)]))
    pool = pool.to(torch.uint8).permute(0, 3, 1, 2).contiguous()
    batch = train_gan.real_batch(pool, 16, torch.Generator().manual_seed(0))
    assert batch.shape == (16, 3, 32, 32) and batch.min() >= -1 and batch.max() <= 1
    originals = pool.float() / 127.5 - 1
    variants = [torch.rot90(o, k, dims=(1, 2)) for o in originals for k in range(4)]
    variants += [v.flip(2) for v in variants]
    for image in batch:
        assert any(torch.equal(image, v) for v in variants)


def test_discriminator_scores_each_image():
    D = Discriminator(D_ch=8)
    assert D(torch.randn(3, 3, 32, 32)).shape == (3,)
    assert sum(p.numel() for p in D.parameters()) < 100_000


def test_rebuilt_bn_statistics_are_those_of_the_generator():
    generator = Generator(**DEMO_GENERATOR_CONFIG).train()
    bn = generator.blocks[0][0].bn1
    bn.stored_mean.fill_(5.0)
    train_gan.rebuild_bn_statistics(generator, batches=20, batch_size=64, seed=0)
    assert not generator.training
    # The first BN layer sees the linear layer's output of the first latent chunk.
    with torch.no_grad():
        h = generator.linear(torch.randn(4096, generator.z_chunk_size)).view(4096, -1, 4, 4)
    expected_mean, expected_var = h.mean(dim=(0, 2, 3)), h.var(dim=(0, 2, 3))
    torch.testing.assert_close(
        bn.stored_mean, expected_mean, atol=0.1 * expected_var.sqrt().mean().item(), rtol=0
    )
    torch.testing.assert_close(bn.stored_var, expected_var, rtol=0.1, atol=0)


TINY_RUN = [
    "--batch_size", "4", "--pool_size", "16", "--checkpoint_every", "1", "--ema_start", "1",
    "--bn_rebuild_batches", "2", "--bn_rebuild_batch_size", "4", "--threads", "1", "--device", "cpu",
]  # fmt: skip


def run_tiny(tmp_path, out_name: str, steps: int, *extra: str) -> None:
    train_gan.main(
        ["--out", str(tmp_path / out_name), "--steps", str(steps), *TINY_RUN, *extra]
        + ["--assets_dir", str(tmp_path / f"{out_name}_assets"), "--samples_path", str(tmp_path / "s.png")]
    )


def test_resumed_training_continues_where_it_stopped(tmp_path, capsys, event_files_of_one_second):
    run_tiny(tmp_path, "straight", 3)
    run_tiny(tmp_path, "resumed", 2, "--log_every", "1")
    run_tiny(tmp_path, "resumed", 3, "--log_every", "1")
    assert "resuming" in capsys.readouterr().out
    assert logged_steps(tmp_path / "resumed")["train/loss_G"] == [1, 2, 3]
    straight = torch.load(tmp_path / "straight" / "checkpoint.pth", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "checkpoint.pth", weights_only=True)
    assert straight["step"] == resumed["step"] == 3
    for key in ("G", "D", "ema"):
        for name, tensor in straight[key].items():
            torch.testing.assert_close(resumed[key][name], tensor, msg=f"{key}.{name}")
    assert not list((tmp_path / "resumed").glob("*.tmp"))


def test_export_writes_a_loadable_generator_and_its_record(tmp_path):
    run_tiny(tmp_path, "run", 1)
    assets = tmp_path / "run_assets"
    weights = assets / "generator.pth"
    assert weights.stat().st_size <= 10_000_000
    config = json.loads((assets / "generator_config.json").read_text())
    assert config == DEMO_GENERATOR_CONFIG
    G = make_big_gan(weights, config=config, device="cpu")
    with torch.no_grad():
        assert G(torch.randn(2, G.dim_z)).shape == (2, 3, 32, 32)
    provenance = (assets / "PROVENANCE.md").read_text()
    assert "python -m demo.train_gan --out" in provenance and "steps: 1 " in provenance
    assert (tmp_path / "s.png").exists()


def test_export_without_a_checkpoint_names_the_missing_file(tmp_path):
    with pytest.raises(
        MissingInputError, match="no checkpoint at .*never_trained/checkpoint.pth; train first"
    ):
        run_tiny(tmp_path, "never_trained", 1, "--export")


def test_baselines_score_what_the_readme_reports_on_the_heldout_folder():
    """No training is involved, so the scores are fixed by the committed world: pinned to 1e-6."""
    test_pairs = list(SegmentationDataset(*ensure_heldout_folder(), crop=False))
    validation_pairs = list(SegmentationDataset(*ensure_validation_folder()))
    scores = evaluate_baselines(test_pairs, validation_pairs)
    assert scores == {
        "all_foreground": {"IoU": pytest.approx(0.275080, abs=1e-6), "share_IoU_above_0.5": 0.0},
        "centred_ellipse": {
            "IoU": pytest.approx(0.496414, abs=1e-6),
            "share_IoU_above_0.5": 0.456,
            "radii": [pytest.approx(0.3), pytest.approx(0.35)],
        },
        "otsu": {"IoU": pytest.approx(0.566597, abs=1e-6), "share_IoU_above_0.5": 0.566},
    }


def test_baseline_masks_are_bool_and_the_ellipse_includes_its_boundary():
    image = torch.zeros(3, 2, 1)
    assert all_foreground(image).dtype == torch.bool and otsu_border_rule(image).dtype == torch.bool
    assert torch.equal(all_foreground(image), torch.ones(2, 1, dtype=torch.bool))
    # Pixel centres at y = -0.25, 0.25 and x = 0 lie exactly on the ellipse of radii (0.25, 0.5).
    assert torch.equal(centred_ellipse(image, 0.25, 0.5), torch.ones(2, 1, dtype=torch.bool))
    assert torch.equal(otsu_border_rule(torch.full((3, 4, 5), 0.3)), torch.zeros(4, 5, dtype=torch.bool))
