r"""Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then evaluate it.

    python train_segmentation.py --out results/run --gan_weights ... --bg_direction ... \
        --val_images_dirs .../images --val_masks_dirs .../masks

Rerunning the same command continues from `<out>/checkpoint.pth`. See README.md.
"""

import shlex
import sys
from dataclasses import replace
from pathlib import Path

import torch

from training import (
    RunInputs,
    build_mask_generator,
    final_scores,
    load_inputs,
    log_samples,
    log_scores,
    make_test_set,
    print_table,
    rank_mask_generator,
    save_prediction_pictures,
    train_segmentation,
)
from UNet.unet_model import UNet
from utils import distributed
from utils.cli import run_cli
from utils.device import resolve_device
from utils.precision import resolve_precision
from utils.run_files import atomic_torch_save, write_json
from utils.tensorboard import run_writer
from utils.train_config import TrainConfig, resolve_config
from visualization import save_samples_grid


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
                model, mask_generator, [], None, config, device, None, inputs.checkpoint, ranks
            )
            distributed.barrier(ranks)
            return {}
        write_run_files(out, config, argv, test_set)
        first_val_set = inputs.val_sets[0] if inputs.val_sets else None
        resumed_step = inputs.checkpoint["step"] if inputs.checkpoint else None
        with run_writer(out / "tensorboard", resumed_step) as writer:
            train_segmentation(
                model,
                mask_generator,
                test_set,
                first_val_set,
                config,
                device,
                writer,
                inputs.checkpoint,
                ranks,
            )
            model.eval()
            atomic_torch_save(model.state_dict(), out / "segmentation.pth")
            extras = _demo_extras if run.demo else None
            score = final_scores(model, test_set, inputs.val_sets, config, device, extras)
            write_json(out / "score.json", score)
            log_scores(writer, score, params.n_steps)
            log_samples(writer, model, test_set, params.n_steps)
        save_prediction_pictures(out, model, test_set, inputs.val_sets, run.val_resize_to, device)
        distributed.barrier(ranks)
    finally:
        distributed.finish(ranks)
    print_table(score)
    if "baselines" in score:
        _print_demo_table(score)
    return score


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
