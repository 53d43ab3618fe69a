"""The training engine behind `train_segmentation.py`: inputs loaded and checked, the synthetic test set,
the training loop (one process or several under torchrun), checkpoints, logging and final scores.

Each step, every process synthesises its share of the batch (`batch_size / world_size` samples from
its own latent stream) and DistributedDataParallel averages the gradients; the main process alone
logs, evaluates and writes files.
"""

import math
import signal
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image

from BigGAN.gan_load import generator_config, make_big_gan
from evaluation import Batch, Scores, ValidationSet, evaluate_model, predictions_grid, validation_sets
from gan_mask_gen import MaskGenerator, MaskStream
from postprocessing import SegmentationInference, connected_components_filter
from UNet.unet_model import UNet
from utils.checkpoint import CHECKPOINT_NAME, read_resumable_checkpoint
from utils.distributed import SINGLE_PROCESS, Ranks, gather, rank_seed, sum_over_ranks
from utils.errors import InputError, InputProblems, UserError
from utils.inputs import load_direction, load_embeddings
from utils.precision import AutocastGenerator, autocast
from utils.progress import progress_bar
from utils.run_files import atomic_torch_save
from utils.stop_signals import StopRequested, StopSignals
from utils.train_config import SegmentationTrainParams, TrainConfig
from utils.weights import load_state_dict_strictly
from visualization import samples_grid


class DivergenceError(UserError, RuntimeError):
    """The loss or the U-Net's weights stopped being finite numbers."""


@dataclass
class RunInputs:
    """Everything a run reads before it writes anything, loaded and checked."""

    checkpoint: dict | None
    G: nn.Module
    direction: torch.Tensor
    zs: torch.Tensor | None
    val_sets: list[ValidationSet]


def load_inputs(config: TrainConfig, device: torch.device, main_process: bool = True) -> RunInputs:
    """Load the checkpoint, generator, direction, embeddings and (main process) folders, reporting every
    problem at once."""
    run = config.run
    problems = InputProblems()
    checkpoint = problems.check(lambda: read_resumable_checkpoint(Path(run.out) / CHECKPOINT_NAME, config))
    dim_z = generator_config(run.gan_config)["dim_z"]
    direction = problems.check(lambda: load_direction(run.bg_direction, dim_z))
    zs = problems.check(lambda: load_embeddings(run.z, dim_z))
    G = problems.check(lambda: make_big_gan(run.gan_weights, device=device, config=run.gan_config))
    folders = (run.val_images_dirs, run.val_masks_dirs, run.skip_bad_files)
    val_sets = problems.check(lambda: validation_sets(*folders)) if main_process else []
    problems.raise_any()
    if run.precision == "bf16":
        G = AutocastGenerator(G, device)
    return RunInputs(checkpoint, G, direction, zs, val_sets)


def build_mask_generator(G, direction, params: SegmentationTrainParams, zs, z_noise, seed, device):
    postprocessing = [connected_components_filter] if params.connected_components else []
    rng = torch.Generator().manual_seed(seed)
    return MaskGenerator(G, direction, params, (), postprocessing, zs=zs, z_noise=z_noise, rng=rng).to(device)


def rank_mask_generator(inputs: RunInputs, config: TrainConfig, ranks: Ranks, device) -> MaskGenerator:
    """This process's share of each batch, from its own latent stream."""
    share = config.params.batch_size // ranks.world_size
    if share < 1:
        raise InputError(
            f"--batch_size {config.params.batch_size} leaves no samples for {ranks.world_size} processes"
        )
    params = replace(config.params, batch_size=share)
    seed = rank_seed(config.run.seed, ranks.rank)
    return build_mask_generator(
        inputs.G, inputs.direction, params, inputs.zs, config.run.z_noise, seed, device
    )


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


def non_finite_weights(model: nn.Module) -> list[str]:
    return [name for name, value in model.state_dict().items() if not torch.isfinite(value).all()]


def distributed_model(model: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """DistributedDataParallel around `model` for several processes; BatchNorm synchronised across GPUs
    (so its statistics cover the whole batch, as in one process), per process on CPUs (gloo has no
    SyncBatchNorm)."""
    if not ranks.distributed:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device])
    return DistributedDataParallel(model)


def train_segmentation(
    model: UNet,
    mask_generator: MaskGenerator,
    test_set: list[Batch],
    val_set: ValidationSet | None,
    config: TrainConfig,
    device: torch.device,
    writer: SummaryWriter | None,
    checkpoint: dict | None = None,
    ranks: Ranks = SINGLE_PROCESS,
) -> None:
    """Adam + StepLR + cross-entropy on streamed synthetic batches, continuing `checkpoint` if given.

    The folder `val_set` is scored every `steps_per_validation` steps; the final scores of all
    folders are computed once by the caller. A non-finite loss or weights stop training with
    `DivergenceError` and leave the last checkpoint as it was; SIGINT/SIGTERM save a checkpoint
    after the current step and raise `StopRequested`. Only the main process logs (`writer`) and
    writes; every process must call this together.
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
        rng = checkpoint["rng"]
        mask_generator.rng.set_state(rng[ranks.rank] if isinstance(rng, list) else rng)
        step = saved_step = checkpoint["step"]
        if ranks.is_main:
            print(f"Resuming from {checkpoint_path} at step {step}")
    if step >= params.n_steps:
        return
    trained = distributed_model(model, ranks, device)

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
        rng_states = gather(rng_state, ranks)  # every process's latent stream, for an exact resume
        bad = non_finite_weights(model)
        if bad:
            raise diverged(step, f"{len(bad)} U-Net tensors are not finite ({', '.join(bad[:3])})")
        if ranks.is_main:
            state = {
                "model": model.state_dict(),
                "opt": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
            }
            rng = rng_states if ranks.distributed else rng_states[0]
            atomic_torch_save(
                {**state, "rng": rng, "step": step, "config": config.to_json()}, checkpoint_path
            )
        saved_step = step

    model.train()
    progress = progress_bar(total=params.n_steps, initial=step, desc="training", disable=not ranks.is_main)
    with StopSignals() as stop, MaskStream(mask_generator) as stream, progress:
        for images, masks in stream:
            with autocast(device, config.run.precision):
                loss = torch.nn.functional.cross_entropy(trained(images), masks)
            # One exchange per step: the mean loss and whether any process was asked to stop.
            loss_sum, stops = sum_over_ranks([loss.item(), float(stop.received is not None)], ranks, device)
            loss_value = loss_sum / ranks.world_size
            if not math.isfinite(loss_value):
                raise diverged(step + 1, f"the loss is {loss_value}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            progress.update()
            if ranks.is_main:
                log_step(
                    writer, model, test_set, val_set, config, device, step, loss_value, scheduler, progress
                )
                model.train()
            if step % params.steps_per_checkpoint_save == 0 or step == params.n_steps or stops:
                save_checkpoint(stream.rng_state)
            if stops:
                raise StopRequested(
                    f"checkpoint of step {step} saved in {checkpoint_path}; rerun the command to continue",
                    stop.received or signal.SIGTERM,
                )
            if step >= params.n_steps:
                break


def log_step(writer, model, test_set, val_set, config, device, step, loss_value, scheduler, progress) -> None:
    """The main process's logging after a step: loss and rate, synthetic test loss, validation."""
    params = config.params
    if step % 10 == 0 or step == params.n_steps:
        progress.set_postfix(loss=f"{loss_value:.4f}")
        writer.add_scalar("train/loss", loss_value, step)
        writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
    if step % params.steps_per_log == 0 or step == params.n_steps:
        writer.add_scalar("val/loss", synthetic_loss(model, test_set, params.synthetic_loss_train_mode), step)
    if step % params.steps_per_validation == 0 and step < params.n_steps:
        log_validation(writer, model, test_set, val_set, config, device, step)


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
    """Sample grid, and the paper's scores of the first validation folder."""
    log_samples(writer, model, test_set, step)
    if val_set is not None:
        scores = evaluate_model(model, val_set.batches(device), config.run.val_resize_to, sod=False)
        for metric in ("F_max", "IoU", "accuracy"):
            writer.add_scalar(f"val/{val_set.name}/{metric}", getattr(scores, metric), step)


def log_scores(writer: SummaryWriter, score: dict, step: int) -> None:
    for name, entry in score.items():
        if "id" in entry:
            writer.add_scalar(f"final/{name}/F_max", entry["id"]["F_max"], step)
            for metric, value in entry["thr"].items():
                writer.add_scalar(f"final/{name}/{metric}", value, step)


def final_scores(
    model: UNet,
    test_set: list[Batch],
    val_sets: list[ValidationSet],
    config: TrainConfig,
    device: torch.device,
    extras: Callable[[Scores, ValidationSet], dict] | None = None,
) -> dict:
    """`score.json`: the synthetic test set and every validation folder; `extras(scores, first folder)`
    adds entries of its own (the demo's baselines)."""
    synthetic = evaluate_model(model, test_set, None, desc="synthetic test set")
    score = {"synthetic": {**synthetic.to_json(), "loss": synthetic_loss(model, test_set)}}
    for val_set in val_sets:
        scores = evaluate_model(model, val_set.batches(device), config.run.val_resize_to, desc=val_set.name)
        score[val_set.name] = scores.to_json()
        if extras is not None and val_set is val_sets[0]:
            score.update(extras(scores, val_set))
    return score


def save_prediction_pictures(out: Path, model, test_set, val_sets, resize_to, device, count: int = 8) -> None:
    """`predictions_synthetic.png` and one `predictions_<folder>.png` per validation folder."""
    images, masks = test_set[0]
    synthetic = [(images[index], masks[index]) for index in range(min(count, len(images)))]
    save_image(predictions_grid(model, synthetic, None, device), out / "predictions_synthetic.png")
    for val_set in val_sets:
        pairs = [val_set.dataset[index] for index in range(min(count, len(val_set.dataset)))]
        save_image(predictions_grid(model, pairs, resize_to, device), out / f"predictions_{val_set.name}.png")


def print_table(score: dict) -> None:
    print(f"\n{'dataset':<24}{'F_max':>8}{'IoU':>8}{'accuracy':>10}")
    for name, entry in score.items():
        if "id" in entry:
            thr = entry["thr"]
            print(f"{name:<24}{entry['id']['F_max']:>8.3f}{thr['IoU']:>8.3f}{thr['accuracy']:>10.3f}")
