r"""Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then evaluate it.

    python train_segmentation.py --out results/run --gan_weights ... --bg_direction ... \
        --val_images_dirs .../images --val_masks_dirs .../masks

Rerunning the same command continues from `<out>/checkpoint.pth`. See README.md.
"""

import math
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from torch import nn
from torch.utils.data import DataLoader

from BigGAN.gan_load import generator_config, make_big_gan
from data import SegmentationDataset
from gan_mask_gen import MaskGenerator, MaskStream
from metrics import F_max, IoU, accuracy, model_metrics
from postprocessing import SegmentationInference, Threshold, connected_components_filter
from UNet.unet_model import UNet
from utils.checkpoint import CHECKPOINT_NAME, read_resumable_checkpoint
from utils.cli import run_cli
from utils.device import resolve_device
from utils.errors import InputProblems, UserError
from utils.inputs import load_direction, load_embeddings
from utils.progress import progress_bar
from utils.run_files import atomic_torch_save, write_json
from utils.stop_signals import StopRequested, StopSignals
from utils.train_config import SegmentationTrainParams, TrainConfig, resolve_config
from utils.weights import load_state_dict_strictly
from visualization import samples_grid, save_samples_grid, square_tiles

Batch = tuple[torch.Tensor, torch.Tensor]


class ValidationSet:
    """A real image/mask folder pair, named after the folder holding them (e.g. ECSSD).

    Every file is decoded when the set is made, so a damaged one is named before training starts.
    """

    def __init__(self, name: str, images_dir: str, masks_dir: str, skip_bad_files: bool = False):
        self.name = name
        self.dataset = SegmentationDataset(images_dir, masks_dir, crop=False, skip_bad_files=skip_bad_files)

    def batches(self, device: torch.device):
        loader = DataLoader(self.dataset, batch_size=1, shuffle=False)
        return ((image.to(device), mask.to(device)) for image, mask in loader)


def validation_sets(
    images_dirs: list[str], masks_dirs: list[str], skip_bad_files: bool
) -> list[ValidationSet]:
    sets, names = [], set()
    for images_dir, masks_dir in zip(images_dirs, masks_dirs, strict=True):
        name = Path(images_dir).resolve().parent.name or Path(images_dir).name
        while name in names:
            name += "_"
        names.add(name)
        sets.append(ValidationSet(name, images_dir, masks_dir, skip_bad_files))
    return sets


def make_test_set(mask_generator: MaskGenerator, count: int) -> list[Batch]:
    """The fixed synthetic test set: ceil(count / batch_size) batches."""
    batches = -(-count // mask_generator.p.batch_size)
    return [mask_generator() for _ in progress_bar(range(batches), desc="synthetic test set", leave=False)]


@torch.no_grad()
def synthetic_loss(model: UNet, test_set: list[Batch], train_mode: bool = False) -> float:
    """Mean cross-entropy on the synthetic test set; `train_mode` runs the U-Net as the original did,
    on batch statistics and updating BatchNorm's running averages."""
    was_training = model.training
    model.train(train_mode)
    losses = [torch.nn.functional.cross_entropy(model(images), masks).item() for images, masks in test_set]
    model.train(was_training)
    return sum(losses) / len(losses)


def evaluate(model: UNet, batches: Callable[[], Iterable[Batch]], resize_to: int | None) -> dict:
    """`id`: F_max of the probability map; `thr`: IoU and accuracy of the map thresholded at 0.5.

    `batches()` is called once per pass, so a large folder is streamed rather than held in memory.
    """
    model.eval()
    return {
        "id": model_metrics(SegmentationInference(model, resize_to=resize_to), batches(), stats=(F_max,)),
        "thr": model_metrics(Threshold(model, resize_to=resize_to), batches(), stats=(IoU, accuracy)),
    }


class DivergenceError(UserError, RuntimeError):
    """The loss or the U-Net's weights stopped being finite numbers."""


def non_finite_weights(model: nn.Module) -> list[str]:
    return [name for name, value in model.state_dict().items() if not torch.isfinite(value).all()]


def train_segmentation(
    model: UNet,
    mask_generator: MaskGenerator,
    test_set: list[Batch],
    val_set: ValidationSet | None,
    config: TrainConfig,
    device: torch.device,
    writer: SummaryWriter,
    checkpoint: dict | None = None,
) -> None:
    """Adam + StepLR + cross-entropy on streamed synthetic batches, continuing `checkpoint` if given.

    The folder `val_set` is scored every `steps_per_validation` steps; the final scores of all
    folders are computed once by the caller. A non-finite loss or weights stop training with
    `DivergenceError` and leave the last checkpoint as it was; SIGINT/SIGTERM save a checkpoint
    after the current step and raise `StopRequested`.
    """
    params, out = config.params, Path(config.run.out)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.steps_per_rate_decay, params.rate_decay)
    checkpoint_path = out / CHECKPOINT_NAME
    step = saved_step = 0
    if checkpoint is not None:
        load_state_dict_strictly(model, checkpoint["model"], str(checkpoint_path))
        optimizer.load_state_dict(checkpoint["opt"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        mask_generator.rng.set_state(checkpoint["rng"])
        step = saved_step = checkpoint["step"]
        print(f"Resuming from {checkpoint_path} at step {step}")
    if step >= params.n_steps:
        return

    def diverged(at_step: int, what: str) -> DivergenceError:
        kept = (
            f"the checkpoint of step {saved_step} in {checkpoint_path} is kept"
            if saved_step
            else "no checkpoint"
        )
        return DivergenceError(
            f"training diverged at step {at_step}: {what}; {kept} and segmentation.pth was not written. "
            f"Likely causes: a learning rate too high (--rate {params.rate}), latents far from N(0, I) "
            "(--z, --z_noise), or a generator giving non-finite images. Retry with other settings in a "
            f"new --out (or delete {checkpoint_path})"
        )

    def save_checkpoint(rng_state: torch.Tensor) -> None:
        nonlocal saved_step
        bad = non_finite_weights(model)
        if bad:
            raise diverged(step, f"{len(bad)} U-Net tensors are not finite ({', '.join(bad[:3])})")
        state = {"model": model.state_dict(), "opt": optimizer.state_dict(), "rng": rng_state}
        state.update(scheduler=scheduler.state_dict(), step=step, config=config.to_json())
        atomic_torch_save(state, checkpoint_path)
        saved_step = step

    model.train()
    progress = progress_bar(total=params.n_steps, initial=step, desc="training")
    with StopSignals() as stop, MaskStream(mask_generator) as stream, progress:
        for images, masks in stream:
            loss = torch.nn.functional.cross_entropy(model(images), masks)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise diverged(step + 1, f"the loss is {loss_value}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            progress.update()
            if step % 10 == 0 or step == params.n_steps:
                progress.set_postfix(loss=f"{loss_value:.4f}")
                writer.add_scalar("train/loss", loss_value, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            if step % params.steps_per_log == 0 or step == params.n_steps:
                val_loss = synthetic_loss(model, test_set, params.synthetic_loss_train_mode)
                writer.add_scalar("val/loss", val_loss, step)
            if step % params.steps_per_validation == 0 and step < params.n_steps:
                log_validation(writer, model, test_set, val_set, config, device, step)
                model.train()
            if step % params.steps_per_checkpoint_save == 0 or step == params.n_steps or stop.received:
                save_checkpoint(stream.rng_state)
            if stop.received:
                raise StopRequested(
                    f"checkpoint of step {step} saved in {checkpoint_path}; rerun the command to continue",
                    stop.received,
                )
            if step >= params.n_steps:
                break


@torch.no_grad()
def log_samples(writer: SummaryWriter, model: UNet, test_set: list[Batch], step: int) -> None:
    """Synthetic images, their masks and the model's probabilities as a TensorBoard image grid."""
    model.eval()
    images, masks = test_set[0]
    writer.add_image(
        "synthetic/samples", samples_grid(images, masks, SegmentationInference(model)(images)), step
    )


@torch.no_grad()
def log_validation(writer, model, test_set, val_set, config, device, step) -> None:
    log_samples(writer, model, test_set, step)
    if val_set is not None:
        scores = model_metrics(
            SegmentationInference(model, resize_to=config.run.val_resize_to),
            val_set.batches(device),
            stats=(F_max,),
        )
        writer.add_scalar(f"val/{val_set.name}/F_max", scores["F_max"], step)


def build_mask_generator(G, direction, params: SegmentationTrainParams, zs, z_noise, seed, device):
    postprocessing = [connected_components_filter] if params.connected_components else []
    rng = torch.Generator().manual_seed(seed)
    return MaskGenerator(G, direction, params, (), postprocessing, zs=zs, z_noise=z_noise, rng=rng).to(device)


def log_scores(writer: SummaryWriter, score: dict, step: int) -> None:
    for name, entry in score.items():
        if "id" in entry:
            writer.add_scalar(f"final/{name}/F_max", entry["id"]["F_max"], step)
            for metric, value in entry["thr"].items():
                writer.add_scalar(f"final/{name}/{metric}", value, step)


def print_table(score: dict) -> None:
    print(f"\n{'dataset':<24}{'F_max':>8}{'IoU':>8}{'accuracy':>10}")
    for name, entry in score.items():
        if "id" in entry:
            thr = entry["thr"]
            print(f"{name:<24}{entry['id']['F_max']:>8.3f}{thr['IoU']:>8.3f}{thr['accuracy']:>10.3f}")


@dataclass
class RunInputs:
    """Everything a run reads before it writes anything, loaded and checked."""

    checkpoint: dict | None
    device: torch.device
    G: nn.Module
    direction: torch.Tensor
    zs: torch.Tensor | None
    val_sets: list[ValidationSet]


def load_inputs(config: TrainConfig) -> RunInputs:
    """Load the checkpoint, generator, direction, embeddings and folders, reporting every problem at once."""
    run = config.run
    problems = InputProblems()
    checkpoint = problems.check(lambda: read_resumable_checkpoint(Path(run.out) / CHECKPOINT_NAME, config))
    device = problems.check(lambda: resolve_device(run.device))
    dim_z = generator_config(run.gan_config)["dim_z"]
    direction = problems.check(lambda: load_direction(run.bg_direction, dim_z))
    zs = problems.check(lambda: load_embeddings(run.z, dim_z))
    G = problems.check(lambda: make_big_gan(run.gan_weights, device=device or "cpu", config=run.gan_config))
    val_sets = problems.check(
        lambda: validation_sets(run.val_images_dirs, run.val_masks_dirs, run.skip_bad_files)
    )
    problems.raise_any()
    return RunInputs(checkpoint, device, G, direction, zs, val_sets)


@torch.no_grad()
def save_predictions(path: Path, model: UNet, pairs: Sequence[Batch], resize_to: int | None, device) -> None:
    """Images, true masks, and the model's probabilities and thresholded masks, one column per pair."""
    model.eval()
    inference = SegmentationInference(model, resize_to=resize_to)
    images, masks = [image for image, _ in pairs], [mask for _, mask in pairs]
    probabilities = [inference(image[None].to(device))[0] for image in images]
    save_samples_grid(path, square_tiles(images), square_tiles(masks), square_tiles(probabilities))


def save_prediction_pictures(out: Path, model, test_set, val_sets, resize_to, device, count: int = 8) -> None:
    """`predictions_synthetic.png` and one `predictions_<folder>.png` per validation folder."""
    images, masks = test_set[0]
    synthetic = [(images[index], masks[index]) for index in range(min(count, len(images)))]
    save_predictions(out / "predictions_synthetic.png", model, synthetic, None, device)
    for val_set in val_sets:
        pairs = [val_set.dataset[index] for index in range(min(count, len(val_set.dataset)))]
        save_predictions(out / f"predictions_{val_set.name}.png", model, pairs, resize_to, device)


def final_scores(model: UNet, test_set: list[Batch], inputs: RunInputs, config: TrainConfig) -> dict:
    """`score.json`: the synthetic test set and every validation folder (plus the demo's extras)."""
    model.eval()
    resize_to = config.run.val_resize_to
    score = {
        "synthetic": {**evaluate(model, lambda: test_set, None), "loss": synthetic_loss(model, test_set)}
    }
    for val_set in inputs.val_sets:
        score[val_set.name] = evaluate(
            model, lambda val_set=val_set: val_set.batches(inputs.device), resize_to
        )
    if config.run.demo and inputs.val_sets:
        score.update(_demo_extras(model, resize_to, inputs.val_sets[0], inputs.device))
    return score


def main(argv: list[str] | None = None) -> dict:
    """Check every input, then train (or continue training) and evaluate; returns `score.json`'s content.

    Nothing is written to `--out` before the flags, files, folders, checkpoint and the first
    synthetic batches have passed their checks.
    """
    argv = sys.argv[1:] if argv is None else argv
    config = resolve_config(argv, demo_preset=_demo_preset)
    run, params = config.run, config.params
    out = Path(run.out)
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    inputs = load_inputs(config)
    device = inputs.device
    torch.manual_seed(run.seed)

    def mask_generator(seed: int) -> MaskGenerator:
        return build_mask_generator(inputs.G, inputs.direction, params, inputs.zs, run.z_noise, seed, device)

    test_set = make_test_set(mask_generator(run.seed + 1), params.test_samples_count)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "args.json", config.to_json())
    (out / "command.sh").write_text(shlex.join(["python", "train_segmentation.py", *argv]) + "\n")
    save_samples_grid(out / "gen_sample.png", *test_set[0])
    model = UNet(base_width=run.unet_width).to(device)
    first_val_set = inputs.val_sets[0] if inputs.val_sets else None
    # Events logged after the checkpoint by an interrupted run are dropped, so steps are not doubled.
    purge_step = inputs.checkpoint["step"] + 1 if inputs.checkpoint else None
    with SummaryWriter(str(out / "tensorboard"), purge_step=purge_step) as writer:
        train_segmentation(
            model,
            mask_generator(run.seed),
            test_set,
            first_val_set,
            config,
            device,
            writer,
            inputs.checkpoint,
        )
        model.eval()
        atomic_torch_save(model.state_dict(), out / "segmentation.pth")
        score = final_scores(model, test_set, inputs, config)
        write_json(out / "score.json", score)
        log_scores(writer, score, params.n_steps)
        log_samples(writer, model, test_set, params.n_steps)
    save_prediction_pictures(out, model, test_set, inputs.val_sets, run.val_resize_to, device)
    print_table(score)
    if "baselines" in score:
        _print_demo_table(score)
    return score


def _demo_preset() -> dict:
    from demo.preset import demo_preset

    return demo_preset()


def _demo_extras(model, resize_to, val_set, device) -> dict:
    from demo.preset import demo_score_extras

    return demo_score_extras(model, resize_to, val_set, device)


def _print_demo_table(score: dict) -> None:
    from demo.preset import print_demo_table

    print_demo_table(score)


if __name__ == "__main__":
    sys.exit(run_cli(main))
