"""Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then evaluate it.

    python train_segmentation.py --out results/run --gan_weights ... --bg_direction ... \
        --val_images_dirs .../images --val_masks_dirs .../masks

Rerunning the same command continues from `<out>/checkpoint.pth`. See README.md.
"""

import shlex
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from tensorboardX import SummaryWriter
from torch.utils.data import DataLoader
from tqdm import tqdm

from BigGAN.gan_load import make_big_gan
from data import SegmentationDataset
from gan_mask_gen import MaskGenerator, MaskStream
from metrics import F_max, IoU, accuracy, model_metrics
from postprocessing import SegmentationInference, Threshold, connected_components_filter
from UNet.unet_model import UNet
from utils.device import resolve_device
from utils.inputs import load_direction, load_embeddings
from utils.run_files import atomic_torch_save, write_json
from utils.train_config import SegmentationTrainParams, TrainConfig, resolve_config
from utils.weights import load_state_dict_strictly
from visualization import samples_grid, save_samples_grid

Batch = tuple[torch.Tensor, torch.Tensor]


class ValidationSet:
    """A real image/mask folder pair, named after the folder holding them (e.g. ECSSD)."""

    def __init__(self, name: str, images_dir: str, masks_dir: str):
        self.name = name
        self.dataset = SegmentationDataset(images_dir, masks_dir, crop=False)

    def batches(self, device: torch.device):
        loader = DataLoader(self.dataset, batch_size=1, shuffle=False)
        return ((image.to(device), mask.to(device)) for image, mask in loader)


def validation_sets(images_dirs: list[str], masks_dirs: list[str]) -> list[ValidationSet]:
    sets, names = [], set()
    for images_dir, masks_dir in zip(images_dirs, masks_dirs, strict=True):
        name = Path(images_dir).resolve().parent.name or Path(images_dir).name
        while name in names:
            name += "_"
        names.add(name)
        sets.append(ValidationSet(name, images_dir, masks_dir))
    return sets


def make_test_set(mask_generator: MaskGenerator, count: int) -> list[Batch]:
    """The fixed synthetic test set: ceil(count / batch_size) batches."""
    batches = -(-count // mask_generator.p.batch_size)
    return [mask_generator() for _ in tqdm(range(batches), desc="synthetic test set", leave=False)]


@torch.no_grad()
def synthetic_loss(model: UNet, test_set: list[Batch]) -> float:
    was_training = model.training
    model.eval()
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


def train_segmentation(
    model: UNet,
    mask_generator: MaskGenerator,
    test_set: list[Batch],
    val_set: ValidationSet | None,
    config: TrainConfig,
    device: torch.device,
    writer: SummaryWriter,
) -> None:
    """Adam + StepLR + cross-entropy on streamed synthetic batches, resuming from the checkpoint.

    The folder `val_set` is scored every `steps_per_validation` steps; the final scores of all
    folders are computed once by the caller.
    """
    params, out = config.params, Path(config.run.out)
    optimizer = torch.optim.Adam(model.parameters(), lr=params.rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.steps_per_rate_decay, params.rate_decay)
    checkpoint_path = out / "checkpoint.pth"
    step = 0
    if checkpoint_path.is_file():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        load_state_dict_strictly(model, checkpoint["model"], str(checkpoint_path))
        optimizer.load_state_dict(checkpoint["opt"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        mask_generator.rng.set_state(checkpoint["rng"])
        step = checkpoint["step"]
        print(f"Resuming from {checkpoint_path} at step {step}")
    if step >= params.n_steps:
        return

    def save_checkpoint(rng_state: torch.Tensor) -> None:
        state = {"model": model.state_dict(), "opt": optimizer.state_dict(), "rng": rng_state}
        state.update(scheduler=scheduler.state_dict(), step=step, config=config.to_json())
        atomic_torch_save(state, checkpoint_path)

    model.train()
    progress = tqdm(total=params.n_steps, initial=step, desc="training", dynamic_ncols=True)
    with MaskStream(mask_generator) as stream:
        for images, masks in stream:
            loss = torch.nn.functional.cross_entropy(model(images), masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            progress.update()
            if step % 10 == 0 or step == params.n_steps:
                progress.set_postfix(loss=f"{loss.item():.4f}")
                writer.add_scalar("train/loss", loss.item(), step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
            if step % params.steps_per_log == 0 or step == params.n_steps:
                writer.add_scalar("val/loss", synthetic_loss(model, test_set), step)
            if step % params.steps_per_validation == 0 and step < params.n_steps:
                log_validation(writer, model, test_set, val_set, config, device, step)
                model.train()
            if step % params.steps_per_checkpoint_save == 0 or step == params.n_steps:
                save_checkpoint(stream.rng_state)
            if step >= params.n_steps:
                break
    progress.close()


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


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    config = resolve_config(argv, demo_preset=_demo_preset)
    run, params = config.run, config.params
    out = Path(run.out)
    val_sets = validation_sets(run.val_images_dirs, run.val_masks_dirs)
    device = resolve_device(run.device)
    torch.manual_seed(run.seed)
    G = make_big_gan(run.gan_weights, device=device, config=run.gan_config)
    direction = load_direction(run.bg_direction, G.dim_shift)
    zs = load_embeddings(run.z, G.dim_z)

    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "args.json", config.to_json())
    (out / "command.sh").write_text(shlex.join(["python", "train_segmentation.py", *argv]) + "\n")

    def mask_generator(seed: int) -> MaskGenerator:
        return build_mask_generator(G, direction, params, zs, run.z_noise, seed, device)

    test_set = make_test_set(mask_generator(run.seed + 1), params.test_samples_count)
    save_samples_grid(out / "gen_sample.png", *test_set[0])
    model = UNet(base_width=run.unet_width).to(device)
    writer = SummaryWriter(str(out / "tensorboard"))
    first_val_set = val_sets[0] if val_sets else None
    train_segmentation(model, mask_generator(run.seed), test_set, first_val_set, config, device, writer)

    model.eval()
    atomic_torch_save(model.state_dict(), out / "segmentation.pth")
    score = {
        "synthetic": {**evaluate(model, lambda: test_set, None), "loss": synthetic_loss(model, test_set)}
    }
    for val_set in val_sets:
        score[val_set.name] = evaluate(
            model, lambda val_set=val_set: val_set.batches(device), run.val_resize_to
        )
    if run.demo and val_sets:
        score.update(_demo_extras(model, run.val_resize_to, val_sets[0], device))
    write_json(out / "score.json", score)
    log_scores(writer, score, params.n_steps)
    log_samples(writer, model, test_set, params.n_steps)
    writer.close()
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
    main()
