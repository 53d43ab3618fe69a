"""Self-training on unlabeled images of the target domain (opt-in, beyond the paper).

    python self_train.py --unet results/demo/segmentation.pth --demo --out results/demo_self
    python self_train.py --unet results/imagenet/segmentation.pth --images datasets/duts-tr/images \
        --refine_labels bilateral --rounds 2 --out results/self_duts --val_images_dirs ... \
        --val_masks_dirs ...

Each round, the U-Net of the round before (the first: `--unet`) labels every image of `--images`
(optionally refining its maps, `--refine_labels`), a documented rule keeps the confident labels, and a
new U-Net trains on them, alone or mixed with the GAN's pairs (`--gan_share`), by the training loop of
train_segmentation.py (progress, TensorBoard, checkpoints, resuming). Every other flag is
train_segmentation.py's (`--demo`, `--n_steps`, `--val_images_dirs`, ...). Round `k` writes
`OUT/round_<k>/` (its `segmentation.pth`, `score.json`, `pseudo_labels.json`, `tensorboard/`); a rerun
skips finished rounds and continues the unfinished one from its checkpoint. The last round's U-Net and
scores are also `OUT/segmentation.pth` and `OUT/score.json`. With `--demo` the images are world images
of the GAN-training seed range, written without masks (their masks are never made, let alone read).
"""

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from data import UnannotatedDataset
from evaluate import Batch, validation_sets
from postprocessing import SegmentationInference, connected_components_filter
from refinement import make_refiner, refine_flag
from train_config import TrainConfig, build_parser, read_resumable_checkpoint, resolve_config
from train_segmentation import (
    RunLog,
    build_mask_generator,
    final_scores,
    launch_config,
    load_inputs,
    print_table,
    train_segmentation,
)
from UNet.unet_load import load_unet
from UNet.unet_model import UNet
from utils import distributed
from utils.checkpoint import CHECKPOINT_NAME
from utils.checks import at_least, check_fields, in_unit_interval
from utils.cli import add_debug_flag, run_cli
from utils.errors import InputError
from utils.flags import add_flags, flag, from_namespace
from utils.progress import progress_bar
from utils.run_files import atomic_torch_save, write_json
from utils.tensorboard import run_writer

LABEL_BATCH = 64


@dataclass
class SelfTrainOptions:
    """What self-training adds to train_segmentation.py's flags."""

    unet: str = flag("", "the U-Net that labels the images in the first round", metavar="FILE")
    images: str = flag("", "folder of unlabeled images (with --demo: the demo's)", metavar="DIR")
    rounds: int = flag(1, "rounds of labelling and training", check=at_least(1))
    refine_labels: str = refine_flag()
    min_margin: float = flag(
        0.8, "keep an image whose mean |2p - 1| over its pixels is at least this", check=in_unit_interval
    )
    gan_share: float = flag(
        0.0, "share of each batch made of the GAN's pairs (0: pseudo-labels alone)", check=in_unit_interval
    )


@dataclass
class LabelRule:
    """An image's pseudo-label is kept when the U-Net is sure of it (mean margin `|2p - 1|`) and it is a
    mask the GAN's filters would keep: not empty, covering less than `max_area` of the image; it then
    goes through the same connected-components filter."""

    min_margin: float
    max_area: float
    connected_components: bool

    def verdict(self, probability: torch.Tensor) -> tuple[torch.Tensor | None, str]:
        """The kept mask `[H, W]` (long), or None; and why."""
        margin = float((2 * probability - 1).abs().mean())
        mask = probability >= 0.5
        if margin < self.min_margin:
            return None, "unsure"
        if self.connected_components:
            mask = connected_components_filter(None, mask[None])[0].bool()
        area = float(mask.float().mean())
        if area == 0:
            return None, "empty"
        if area >= self.max_area:
            return None, "too large"
        return mask.long(), "kept"


class PairStream:
    """Endless random batches (flipped at random) of image/mask pairs held in memory, with the
    interface of `MaskGenerator` that the training loop uses: a call gives a batch, `rng` its state,
    and, with `gan`, a share of each batch made by the GAN's mask generator."""

    def __init__(self, images, masks, batch_size: int, rng: torch.Generator, device, gan=None):
        self.images, self.masks = images, masks
        self.batch_size = batch_size
        self.rng = rng
        self.device = torch.device(device)
        self.gan = gan

    def __call__(self) -> Batch:
        count = self.batch_size - (self.gan.p.batch_size if self.gan is not None else 0)
        index = torch.randint(len(self.images), (count,), generator=self.rng)
        images, masks = self.images[index], self.masks[index]
        flip = torch.rand(count, generator=self.rng) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
        images, masks = images.to(self.device), masks.to(self.device)
        if self.gan is not None:
            gan_images, gan_masks = self.gan()
            images, masks = torch.cat([images, gan_images]), torch.cat([masks, gan_masks.long()])
        return images, masks


@torch.no_grad()
def pseudo_labels(
    teacher: UNet, images: torch.Tensor, config: TrainConfig, options: SelfTrainOptions
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """The kept images and masks, and the counts of each verdict."""
    teacher.eval()
    inference = SegmentationInference(teacher, config.run.val_resize_to, make_refiner(options.refine_labels))
    params = config.params
    rule = LabelRule(options.min_margin, params.mask_size_up, params.connected_components)
    kept_images, kept_masks, verdicts = [], [], {"kept": 0, "unsure": 0, "empty": 0, "too large": 0}
    batches = range(0, len(images), LABEL_BATCH)
    for start in progress_bar(batches, desc="labelling", leave=False):
        batch = images[start : start + LABEL_BATCH]
        for image, probability in zip(batch, inference(batch).cpu(), strict=True):
            mask, verdict = rule.verdict(probability)
            verdicts[verdict] += 1
            if mask is not None:
                kept_images.append(image)
                kept_masks.append(mask)
    if not kept_images:
        raise InputError(
            f"no pseudo-label passed the rule ({verdicts}): lower --min_margin, or label with a better U-Net"
        )
    return torch.stack(kept_images), torch.stack(kept_masks), verdicts


def read_unlabeled(folder: str) -> torch.Tensor:
    """Every image of `folder`, `[N, 3, H, W]` in [-1, 1]; they must share one size (as the demo's)."""
    dataset = UnannotatedDataset(folder)
    images = [dataset[index] for index in progress_bar(range(len(dataset)), desc="reading", leave=False)]
    sizes = {tuple(image.shape) for image in images}
    if len(sizes) > 1:
        raise InputError(f"the images of {folder} have {len(sizes)} sizes: resize them to one first")
    return torch.stack(images)


def train_on_pairs(
    images: torch.Tensor,
    masks: torch.Tensor,
    config: TrainConfig,
    device,
    seed: int,
    checkpoint: dict | None,
    gan=None,
) -> tuple[UNet, dict]:
    """A new U-Net trained on image/mask pairs (and `gan`'s share) in `config.run.out` by the training
    loop of train_segmentation.py, continuing `checkpoint` (`read_resumable_checkpoint`'s); saved and
    scored on the validation folders. `score.json`'s `pairs` entry is the first batch of the pairs, on
    which the loss is logged."""
    out, run, params = Path(config.run.out), config.run, config.params
    val_sets = validation_sets(run.val_images_dirs, run.val_masks_dirs, run.skip_bad_files)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = UNet(base_width=run.unet_width).to(device)
    stream = PairStream(images, masks, params.batch_size, torch.Generator().manual_seed(seed), device, gan)
    test_set = [(images[:LABEL_BATCH].to(device), masks[:LABEL_BATCH].to(device))]
    first_val_set = val_sets[0] if val_sets else None
    resumed_step = checkpoint["step"] if checkpoint else None
    with run_writer(out / "tensorboard", resumed_step) as writer:
        log = RunLog(writer, test_set, first_val_set, config, device)
        train_segmentation(model, stream, config, device, log=log, checkpoint=checkpoint)
        model.eval()
        score = final_scores(model, test_set, val_sets, config, device)
        log.scores(score, params.n_steps)
    score["pairs"] = score.pop("synthetic")
    atomic_torch_save(model.state_dict(), out / "segmentation.pth")
    return model, score


def train_round(
    number: int, teacher: UNet, images: torch.Tensor, config: TrainConfig, options: SelfTrainOptions, device
) -> tuple[UNet, dict]:
    """One round in `OUT/round_<number>/`: label, keep, train a new U-Net, score it (`score.json` also
    holds the round's `wall_time_s` in this process)."""
    started = time.monotonic()
    out = Path(config.run.out) / f"round_{number}"
    round_config = replace(config, run=replace(config.run, out=str(out)))
    checkpoint = read_resumable_checkpoint(out / CHECKPOINT_NAME, round_config)  # refused before labelling
    kept_images, kept_masks, verdicts = pseudo_labels(teacher, images, config, options)
    print(f"round {number}: {verdicts['kept']:,} of {len(images):,} pseudo-labels kept ({verdicts})")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "pseudo_labels.json", {"images": len(images), **verdicts})
    seed = config.run.seed + number
    gan = None
    if options.gan_share > 0:
        inputs = load_inputs(round_config, device)
        params = config.params
        gan_params = replace(params, batch_size=max(1, round(options.gan_share * params.batch_size)))
        latents = (inputs.G, inputs.direction, gan_params, inputs.zs, config.run.z_noise)
        gan = build_mask_generator(*latents, seed, device)
    student, score = train_on_pairs(kept_images, kept_masks, round_config, device, seed, checkpoint, gan)
    score["pseudo_labels"] = {**score.pop("pairs"), "images": len(images), **verdicts}
    score["wall_time_s"] = time.monotonic() - started
    write_json(out / "score.json", score)
    return student, score


def _demo_preset() -> dict:
    from demo.preset import demo_preset

    return demo_preset()


def unlabeled_folder(options: SelfTrainOptions, demo: bool) -> str:
    if options.images:
        return options.images
    if demo:
        from demo.world import ensure_unlabeled_folder

        return str(ensure_unlabeled_folder())
    raise InputError("give --images, a folder of unlabeled images of the target domain (or --demo)")


def main(argv: list[str] | None = None) -> dict:
    """Every round; returns the last round's `score.json`."""
    argv = sys.argv[1:] if argv is None else argv
    # The whole command line is checked (and --help shown) against both sets of flags; the training
    # flags then go to train_segmentation.py's parser.
    parser = argparse.ArgumentParser(
        prog="self_train.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[build_parser()],
        conflict_handler="resolve",
    )
    add_flags(parser, SelfTrainOptions, defaults=True)
    add_debug_flag(parser)
    parser.parse_args(argv)
    own = argparse.ArgumentParser(add_help=False)
    add_flags(own, SelfTrainOptions, defaults=True)
    args, training_argv = own.parse_known_args(argv)
    options = from_namespace(SelfTrainOptions, args)
    check_fields(options)
    if not options.unet:
        raise InputError("give --unet, the trained U-Net that labels the images in the first round")
    config, device = launch_config(
        resolve_config(training_argv, demo_preset=_demo_preset), distributed.SINGLE_PROCESS
    )
    if not config.run.out:
        raise InputError("give --out, the folder of the rounds")
    if config.run.threads is not None:
        torch.set_num_threads(config.run.threads)
    teacher = load_unet(options.unet, device)
    images = read_unlabeled(unlabeled_folder(options, config.run.demo))
    out = Path(config.run.out)
    score = {}
    for number in range(1, options.rounds + 1):
        done = out / f"round_{number}" / "segmentation.pth"
        if done.exists():
            print(f"round {number}: done earlier ({done})")
            teacher = load_unet(done, device)
            continue
        teacher, score = train_round(number, teacher, images, config, options, device)
    last = out / f"round_{options.rounds}"
    if score or not (out / "segmentation.pth").exists():  # a round was trained now
        shutil.copyfile(last / "segmentation.pth", out / "segmentation.pth")
        shutil.copyfile(last / "score.json", out / "score.json")
    score = score or json.loads((last / "score.json").read_text())
    print_table(score)
    return score


if __name__ == "__main__":
    sys.exit(run_cli(main))
