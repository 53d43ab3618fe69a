r"""Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then evaluate it.

    python train_segmentation.py --out results/run --gan_weights ... --bg_direction ... \
        --val_images_dirs .../images --val_masks_dirs .../masks

Rerunning the same command continues from `<out>/checkpoint.pth`. The run, top to bottom: inputs loaded
and checked (`load_inputs`), the synthetic test set, the loop (`train_segmentation`, one process or
several under torchrun, each synthesising its share of the batch), logging (`RunLog`), final scores and
pictures (`main`). Flags and their checks: train_config.py; docs/training.md.
"""

import math
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torchvision.utils import save_image

from BigGAN.gan_load import generator_config, make_big_gan
from evaluate import Batch, Scores, ValidationSet, evaluate_model, predictions_grid, validation_sets
from gan_mask_gen import MaskGenerator, MaskStream
from postprocessing import SegmentationInference, connected_components_filter
from refinement import make_refiner
from train_config import SegmentationTrainParams, TrainConfig, read_resumable_checkpoint, resolve_config
from UNet.unet_model import UNet
from utils import distributed
from utils.checkpoint import CHECKPOINT_NAME
from utils.cli import run_cli
from utils.device import resolve_device
from utils.distributed import SINGLE_PROCESS, Ranks, gather, rank_seed, sum_over_ranks
from utils.errors import InputError, InputProblems, UserError
from utils.inputs import load_direction, load_embeddings
from utils.precision import AutocastGenerator, autocast, resolve_precision
from utils.progress import progress_bar
from utils.run_files import atomic_torch_save, write_json
from utils.stop_signals import StopRequested, StopSignals
from utils.tensorboard import run_writer
from utils.weights import load_state_dict_strictly
from visualization import samples_grid, save_samples_grid


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
    G.to(memory_format=torch.channels_last)  # 1.5-1.7x faster synthesis on the CPU (bench/README.md)
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
    config: TrainConfig,
    device: torch.device,
    *,
    log: "RunLog | None" = None,
    checkpoint: dict | None = None,
    ranks: Ranks = SINGLE_PROCESS,
) -> None:
    """Adam + StepLR + cross-entropy on streamed synthetic batches, continuing `checkpoint` if given.

    The main process passes `log` (TensorBoard, validation) and alone writes files; the final scores
    are computed once by the caller. A non-finite loss or weights stop training with `DivergenceError`
    and leave the last checkpoint as it was; SIGINT/SIGTERM save a checkpoint after the current step and
    raise `StopRequested`. Every process must call this together.

    The U-Net trains with channels-last weights (faster convolutions: bench/README.md) and is handed
    back in the usual layout, so that what is saved and scored afterwards rounds as in `evaluate.py`.
    """
    model.to(memory_format=torch.channels_last)
    try:
        _train_steps(model, mask_generator, config, device, log, checkpoint, ranks)
    finally:
        model.to(memory_format=torch.contiguous_format)


def _train_steps(model, mask_generator, config, device, log, checkpoint, ranks) -> None:
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
                logits = trained(images.contiguous(memory_format=torch.channels_last))
                loss = torch.nn.functional.cross_entropy(logits, masks)
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
            if log is not None:
                log.step(model, step, loss_value, scheduler.get_last_lr()[0], progress)
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


@dataclass
class RunLog:
    """What the main process logs to TensorBoard during a run: losses, rate, samples and validation."""

    writer: SummaryWriter
    test_set: list[Batch]
    val_set: ValidationSet | None
    config: TrainConfig
    device: torch.device

    def step(self, model: UNet, step: int, loss_value: float, rate: float, progress) -> None:
        """After a step: loss and rate, the synthetic test loss and validation at their intervals."""
        params = self.config.params
        if step % 10 == 0 or step == params.n_steps:
            progress.set_postfix(loss=f"{loss_value:.4f}")
            self.writer.add_scalar("train/loss", loss_value, step)
            self.writer.add_scalar("train/lr", rate, step)
        if step % params.steps_per_log == 0 or step == params.n_steps:
            test_loss = synthetic_loss(model, self.test_set, params.synthetic_loss_train_mode)
            self.writer.add_scalar("val/loss", test_loss, step)
        if step % params.steps_per_validation == 0 and step < params.n_steps:
            self.validation(model, step)

    @torch.no_grad()
    def samples(self, model: UNet, step: int) -> None:
        """Synthetic images, their masks and the model's probabilities as an image grid."""
        model.eval()
        images, masks = self.test_set[0]
        grid = samples_grid(images, masks, SegmentationInference(model)(images))
        self.writer.add_image("synthetic/samples", grid, step)

    @torch.no_grad()
    def validation(self, model: UNet, step: int) -> None:
        """Sample grid, and the paper's scores of the first validation folder."""
        self.samples(model, step)
        if self.val_set is not None:
            batches = self.val_set.batches(self.device)
            scores = evaluate_model(model, batches, self.config.run.val_resize_to, sod=False)
            for metric in ("F_max", "IoU", "accuracy"):
                self.writer.add_scalar(f"val/{self.val_set.name}/{metric}", getattr(scores, metric), step)

    def scores(self, score: dict, step: int) -> None:
        """The final scores of every folder."""
        for name, entry in score.items():
            if "id" in entry:
                self.writer.add_scalar(f"final/{name}/F_max", entry["id"]["F_max"], step)
                for metric, value in entry["thr"].items():
                    self.writer.add_scalar(f"final/{name}/{metric}", value, step)


def final_scores(
    model: UNet,
    test_set: list[Batch],
    val_sets: list[ValidationSet],
    config: TrainConfig,
    device: torch.device,
    extras: Callable[[Scores, ValidationSet], dict] | None = None,
) -> dict:
    """`score.json`: the synthetic test set and every validation folder (those refined with `--refine`);
    `extras(scores, first folder)` adds entries of its own (the demo's baselines)."""
    synthetic = evaluate_model(model, test_set, None, desc="synthetic test set")
    score = {"synthetic": {**synthetic.to_json(), "loss": synthetic_loss(model, test_set)}}
    refine = make_refiner(config.run.refine)
    for val_set in val_sets:
        batches = val_set.batches(device)
        scores = evaluate_model(model, batches, config.run.val_resize_to, desc=val_set.name, refine=refine)
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
        if isinstance(entry, dict) and "id" in entry:
            thr = entry["thr"]
            print(f"{name:<24}{entry['id']['F_max']:>8.3f}{thr['IoU']:>8.3f}{thr['accuracy']:>10.3f}")


def launch_config(config: TrainConfig, ranks: distributed.Ranks) -> tuple[TrainConfig, torch.device]:
    """The config with what the launch decides (processes, resolved precision) and this process's device."""
    device = distributed.rank_device(resolve_device(config.run.device), ranks)
    run = replace(
        config.run, world_size=ranks.world_size, precision=resolve_precision(config.run.precision, device)
    )
    return replace(config, run=run), device


def prepare(config: TrainConfig, ranks: distributed.Ranks, device: torch.device) -> tuple[RunInputs, list]:
    """Every input and (main process) the synthetic test set, checked before anything is written; all
    processes fail together."""
    inputs, test_set, error = None, [], None
    try:
        inputs = load_inputs(config, device, ranks.is_main)
        if ranks.is_main:
            generator = build_mask_generator(
                inputs.G,
                inputs.direction,
                config.params,
                inputs.zs,
                config.run.z_noise,
                config.run.seed + 1,
                device,
            )
            test_set = make_test_set(generator, config.params.test_samples_count)
    except Exception as failure:  # shared with the other processes before it is raised
        error = failure
    distributed.raise_if_any_failed(error, ranks, device)
    return inputs, test_set


def write_run_files(out: Path, config: TrainConfig, argv: list[str], test_set: list) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "args.json", config.to_json())
    (out / "command.sh").write_text(shlex.join(["python", "train_segmentation.py", *argv]) + "\n")
    save_samples_grid(out / "gen_sample.png", *test_set[0])


def main(argv: list[str] | None = None) -> dict:
    """Check every input, then train (or continue training) and evaluate; returns `score.json`'s content
    (in the main process; other processes of a torchrun launch return {}).

    Nothing is written to `--out` before the flags, files, folders, checkpoint and the first
    synthetic batches have passed their checks.
    """
    argv = sys.argv[1:] if argv is None else argv
    started = time.monotonic()
    ranks = distributed.ranks_from_environment()
    config, device = launch_config(resolve_config(argv, demo_preset=_demo_preset), ranks)
    run, params = config.run, config.params
    out = Path(run.out)
    if run.threads is not None:
        torch.set_num_threads(run.threads)
    distributed.start(ranks, device)
    try:
        # Seeded before the generator is built, whose initialisation draws from the global RNG, as in
        # the original: the U-Net's initial weights depend on that order.
        torch.manual_seed(run.seed)
        inputs, test_set = prepare(config, ranks, device)
        model = UNet(base_width=run.unet_width).to(device)
        mask_generator = rank_mask_generator(inputs, config, ranks, device)
        if not ranks.is_main:
            train_segmentation(
                model, mask_generator, config, device, checkpoint=inputs.checkpoint, ranks=ranks
            )
            distributed.barrier(ranks)
            return {}
        write_run_files(out, config, argv, test_set)
        first_val_set = inputs.val_sets[0] if inputs.val_sets else None
        resumed_step = inputs.checkpoint["step"] if inputs.checkpoint else None
        with run_writer(out / "tensorboard", resumed_step) as writer:
            log = RunLog(writer, test_set, first_val_set, config, device)
            train_segmentation(
                model, mask_generator, config, device, log=log, checkpoint=inputs.checkpoint, ranks=ranks
            )
            model.eval()
            atomic_torch_save(model.state_dict(), out / "segmentation.pth")
            extras = _demo_extras if run.demo else None
            score = final_scores(model, test_set, inputs.val_sets, config, device, extras)
            write_json(out / "score.json", score)
            log.scores(score, params.n_steps)
            log.samples(model, params.n_steps)
        save_prediction_pictures(out, model, test_set, inputs.val_sets, run.val_resize_to, device)
        distributed.barrier(ranks)
    finally:
        distributed.finish(ranks)
    print_table(score)
    if "baselines" in score:
        _print_demo_table(score)
    print(f"\nwall time: {wall_time(time.monotonic() - started)}")
    return score


def wall_time(seconds: float) -> str:
    """`4 min 05 s`, or `12 s` under a minute."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def _demo_preset() -> dict:
    from demo.preset import demo_preset

    return demo_preset()


def _demo_extras(scores, val_set) -> dict:
    from demo.preset import demo_score_extras

    return demo_score_extras(scores, val_set)


def _print_demo_table(score: dict) -> None:
    from demo.preset import print_demo_table

    print_demo_table(score)


if __name__ == "__main__":
    sys.exit(run_cli(main))
