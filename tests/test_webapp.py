"""The web demo's parts without a browser: the explorer is the training run's mask synthesis, the
segmenter writes segment.py's mask file, the run view reads a run folder; each mistake is named."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboardX import SummaryWriter

import segment
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH, DEMO_UNET_PATH
from train_config import SegmentationTrainParams
from train_segmentation import build_mask_generator
from utils.errors import InputError, MissingInputError, UserError
from webapp.explorer import DirectionExplorer
from webapp.runs import read_run
from webapp.segmenter import DEMO_CHOICE, RUN_CHOICE, ImageSegmenter, unet_choices


@pytest.fixture(scope="module")
def explorer():
    return DirectionExplorer(DEMO_GENERATOR_PATH, DEMO_GENERATOR_CONFIG, DEMO_DIRECTION_PATH)


def test_the_explorer_shows_the_training_runs_sample_and_verdict(explorer):
    sample = explorer.sample(seed=7, radius=5.0)
    params = SegmentationTrainParams(batch_size=1, latent_shift_r=5.0)
    generator = build_mask_generator(explorer.G, explorer.direction, params, None, 0.0, 7, "cpu")
    _, shifted, mask = generator.gen_samples(generator.make_noise(1))
    assert sample.verdict == generator.filter_verdicts(shifted, mask)[0]
    assert sample.mask_share == pytest.approx(float(mask.float().mean()))
    shown = np.asarray(sample.mask)[::8, ::8, 0] > 127  # 32 px enlarged 8 times, nearest
    assert np.array_equal(shown, mask[0].bool().numpy())
    assert explorer.sample(seed=7, radius=-5.0).mask_share != sample.mask_share


def test_the_explorer_exports_the_walk(explorer, tmp_path):
    path = explorer.walk_gif(3, tmp_path / "walk.gif", radius=4.0, steps=3)
    with Image.open(path) as gif:
        assert gif.n_frames == 4


@pytest.fixture
def photo(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    picture = np.full((40, 56, 3), (30, 60, 170), np.uint8)
    picture[10:30, 15:40] = (230, 160, 30)
    Image.fromarray(picture).save(images / "photo.png")
    return images / "photo.png"


@pytest.mark.parametrize("refine", ["none", "bilateral"])
def test_the_segmenter_writes_the_mask_segment_py_writes(photo, tmp_path, refine):
    result = ImageSegmenter("cpu", tmp_path / "app").segment(photo, DEMO_UNET_PATH, 0.5, 32, refine)
    flags = ["--resize_to", "32", "--refine", refine, "--device", "cpu"]
    segment.main(
        [
            "--weights",
            str(DEMO_UNET_PATH),
            "--images",
            str(photo.parent),
            "--out",
            str(tmp_path / "cli"),
            *flags,
        ]
    )
    assert result.mask_file.read_bytes() == (tmp_path / "cli" / "photo.png").read_bytes()
    assert np.array_equal(np.asarray(result.mask), np.asarray(Image.open(tmp_path / "cli" / "photo.png")))
    assert result.overlay.size == result.probability.size == (56, 40)


def test_the_segmenter_names_a_file_that_is_no_image_and_weights_of_another_kind(photo, tmp_path):
    segmenter = ImageSegmenter("cpu", tmp_path / "app")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(InputError, match="notes.txt is not an image that can be read .*upload a PNG, JPEG"):
        segmenter.segment(text, DEMO_UNET_PATH, 0.5, 32, "none")
    with pytest.raises(UserError, match="generator.pth is not a U-Net state dict"):
        segmenter.segment(photo, DEMO_GENERATOR_PATH, 0.5, 32, "none")
    with pytest.raises(MissingInputError, match="nowhere.pth do not exist"):
        segmenter.segment(photo, tmp_path / "nowhere.pth", 0.5, 32, "none")
    assert not (tmp_path / "app" / "photo.png").exists()


def test_the_unet_choices_list_what_is_there(tmp_path):
    assert list(unet_choices(root=tmp_path)) == [DEMO_CHOICE, RUN_CHOICE]
    (tmp_path / "pretrained").mkdir()
    torch.save({}, tmp_path / "pretrained" / "u_net_flowers.pth")
    own = tmp_path / "mine.pth"
    choices = unet_choices(own, root=tmp_path)
    assert list(choices) == [
        f"given: {own}",
        DEMO_CHOICE,
        "released: flowers (u_net_flowers.pth)",
        RUN_CHOICE,
    ]
    assert choices["released: flowers (u_net_flowers.pth)"] == tmp_path / "pretrained" / "u_net_flowers.pth"


def test_the_run_view_reads_scores_pictures_and_curves(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    score = {"heldout": {"id": {"F_max": 0.9443}, "thr": {"IoU": 0.8517, "accuracy": 0.9606}}, "seed": 2}
    (run / "score.json").write_text(json.dumps(score))
    Image.new("RGB", (8, 8)).save(run / "gen_sample.png")
    with SummaryWriter(str(run / "tensorboard")) as writer:
        for step in range(3):
            writer.add_scalar("train/loss", 1 / (step + 1), step)
            writer.add_scalar("train/lr", 0.001, step)
        writer.add_scalar("final/heldout/IoU", 0.85, 2)
    view = read_run(f" {run} ")
    assert "| heldout | 0.944 | 0.852 | 0.961 |" in view.scores and "seed" not in view.scores
    assert view.pictures == [(run / "gen_sample.png", "synthetic pairs the U-Net trained on")]
    assert [(row["curve"], row["step"]) for row in view.curves] == [("train/loss", step) for step in range(3)]


def test_the_run_view_names_what_is_not_a_run(tmp_path):
    with pytest.raises(MissingInputError, match="nowhere does not exist: give the --out folder"):
        read_run(tmp_path / "nowhere")
    with pytest.raises(
        InputError, match="holds no score.json: it is not a finished train_segmentation.py run"
    ):
        read_run(tmp_path)
    (tmp_path / "score.json").write_text("{")
    with pytest.raises(InputError, match="score.json cannot be read as JSON"):
        read_run(tmp_path)
