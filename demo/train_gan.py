"""Train the demo world's BigGAN and export its EMA generator as a BigGAN-PyTorch state dict.

    python -m demo.train_gan --out runs/demo_gan --steps 6000 --threads 1

Hinge loss, Adam (2e-4, betas 0/0.999), two discriminator steps per generator step and an EMA of the
generator, as in BigGAN-PyTorch, at a size that trains on one CPU core. Rerunning the same command
continues from `--out/checkpoint.pth`. `--export` only rebuilds and exports from that checkpoint.
"""

import argparse
import copy
import datetime
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import make_grid, save_image

from BigGAN.gan_load import UnconditionalBigGAN, make_big_gan
from BigGAN.model.BigGAN import Generator
from BigGAN.model.layers import BatchNorm2d, ConditionalBatchNorm2d
from demo.assets import ASSETS_DIR, DEMO_GENERATOR_CONFIG
from demo.discriminator import Discriminator
from demo.world import SEED_RANGES, render_sample
from utils.checks import at_least, check_fields, positive
from utils.cli import run_cli
from utils.device import resolve_device
from utils.errors import MissingInputError
from utils.flags import add_flags, flag, from_namespace, threads_flag
from utils.progress import progress_bar
from utils.run_files import atomic_torch_save
from utils.tensorboard import run_writer


@dataclass
class GANTrainConfig:
    """Settings of the demo GAN's training (BigGAN-PyTorch's recipe at a CPU-sized scale)."""

    steps: int = flag(6000, "generator steps", check=at_least(1))
    batch_size: int = flag(32, "images per batch", check=at_least(2))
    G_lr: float = flag(2e-4, "generator Adam learning rate", check=positive)
    D_lr: float = flag(2e-4, "discriminator Adam learning rate", check=positive)
    betas: tuple[float, float] = (0.0, 0.999)
    D_steps: int = flag(2, "discriminator steps per generator step", check=at_least(1))
    D_ch: int = flag(8, "discriminator base width", check=at_least(1))
    ema_decay: float = flag(0.999, "decay of the generator's weight average", check=positive)
    ema_start: int = flag(300, "step from which the average is kept", check=at_least(0))
    pool_size: int = flag(30_000, "world images rendered for training", check=at_least(1))
    seed: int = flag(0, "seed of initialisation and sampling", check=at_least(0))
    log_every: int = flag(50, "TensorBoard scalars every this many steps", check=at_least(1))
    sample_every: int = flag(500, "TensorBoard sample grid every this many steps", check=at_least(1))
    checkpoint_every: int = flag(250, "checkpoint every this many steps", check=at_least(1))
    bn_rebuild_batches: int = flag(
        60, "train-mode batches that rebuild BatchNorm statistics", check=at_least(1)
    )
    bn_rebuild_batch_size: int = flag(64, "their batch size", check=at_least(2))


@dataclass
class MachineOptions:
    threads: int | None = threads_flag()


def world_pool(size: int) -> torch.Tensor:
    """The first `size` GAN-training images of the world, uint8 [N, 3, 32, 32] (92 MB for 30k)."""
    seeds = SEED_RANGES.gan_training[:size]
    images = np.stack(
        [render_sample(seed)[0] for seed in progress_bar(seeds, desc="rendering world", leave=False)]
    )
    return torch.from_numpy(np.round(images * 255).astype(np.uint8)).permute(0, 3, 1, 2).contiguous()


def real_batch(pool: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A random batch in [-1, 1], each image turned by a random multiple of 90 degrees and maybe flipped.

    The world has no preferred orientation, so this multiplies the data eightfold for free.
    """
    index = torch.randint(len(pool), (batch_size,), generator=generator)
    images = pool[index].float() / 127.5 - 1
    turns = torch.randint(4, (batch_size,), generator=generator)
    for k in range(1, 4):
        images[turns == k] = torch.rot90(images[turns == k], k, dims=(2, 3))
    flip = torch.rand(batch_size, generator=generator) < 0.5
    images[flip] = images[flip].flip(3)
    return images


def init_orthogonal(module: nn.Module) -> nn.Module:
    """BigGAN-PyTorch's 'ortho' initialisation of every weight matrix and kernel."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.Linear | nn.Embedding):
            nn.init.orthogonal_(layer.weight)
    return module


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Parameters move towards the model's; buffers (BN statistics, SN vectors) are copied."""
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param, 1 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


BN_MOMENTUM = 0.1  # fixed in BigGAN's BN layers: stored <- 0.9 * stored + 0.1 * batch statistic


@torch.no_grad()
def rebuild_bn_statistics(generator: Generator, batches: int, batch_size: int, seed: int) -> None:
    """Set the stored BN statistics to their average over `batches` no-grad passes of this generator.

    During training they tracked the raw generator, not its EMA. Each pass starts from zeroed
    buffers, so afterwards they hold 0.1 x that batch's statistics, which are summed; the result is the
    plain mean over batches (a momentum average would keep a trace of the reset values). Only the BN
    layers run in train mode: the spectral-norm vectors stay as eval mode will use them.
    """
    generator.eval()
    layers = [m for m in generator.modules() if isinstance(m, BatchNorm2d | ConditionalBatchNorm2d)]
    sums = [(torch.zeros_like(m.stored_mean), torch.zeros_like(m.stored_var)) for m in layers]
    device = next(generator.parameters()).device
    rng = torch.Generator().manual_seed(seed)
    for _ in range(batches):
        for layer in layers:
            layer.stored_mean.zero_()
            layer.stored_var.zero_()
            layer.train()
        generate(generator, torch.randn(batch_size, generator.dim_z, generator=rng).to(device))
        for layer, (mean_sum, var_sum) in zip(layers, sums, strict=True):
            mean_sum += layer.stored_mean / BN_MOMENTUM
            var_sum += layer.stored_var / BN_MOMENTUM
    for layer, (mean_sum, var_sum) in zip(layers, sums, strict=True):
        layer.stored_mean.copy_(mean_sum / batches)
        layer.stored_var.copy_(var_sum / batches)
    generator.eval()


def generate(generator: Generator, z: torch.Tensor) -> torch.Tensor:
    return UnconditionalBigGAN(generator)(z)


def train_step(G, D, opt_G, opt_D, pool, config: GANTrainConfig, data_rng, device) -> dict[str, float]:
    """`D_steps` hinge-loss discriminator updates, then one generator update."""
    for _ in range(config.D_steps):
        real = real_batch(pool, config.batch_size, data_rng).to(device)
        with torch.no_grad():
            fake = generate(G, torch.randn(config.batch_size, G.dim_z, device=device))
        d_real, d_fake = D(real), D(fake)
        loss_D_real = F.relu(1 - d_real).mean()
        loss_D_fake = F.relu(1 + d_fake).mean()
        opt_D.zero_grad(set_to_none=True)
        (loss_D_real + loss_D_fake).backward()
        opt_D.step()
    loss_G = -D(generate(G, torch.randn(config.batch_size, G.dim_z, device=device))).mean()
    opt_G.zero_grad(set_to_none=True)
    loss_G.backward()
    opt_G.step()
    return {"loss_D_real": loss_D_real.item(), "loss_D_fake": loss_D_fake.item(), "loss_G": loss_G.item()}


def build_models(config: GANTrainConfig, device):
    torch.manual_seed(config.seed)
    G = init_orthogonal(Generator(**DEMO_GENERATOR_CONFIG)).to(device).train()
    D = (
        init_orthogonal(Discriminator(D_ch=config.D_ch, SN_eps=DEMO_GENERATOR_CONFIG["SN_eps"]))
        .to(device)
        .train()
    )
    ema = copy.deepcopy(G)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.G_lr, betas=config.betas, eps=1e-6)
    opt_D = torch.optim.Adam(D.parameters(), lr=config.D_lr, betas=config.betas, eps=1e-6)
    return G, D, ema, opt_G, opt_D


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(
            f"{path} is not a readable demo GAN checkpoint ({error}); delete it to start afresh"
        ) from error


def train(out: Path, config: GANTrainConfig, device: torch.device, command: str) -> dict:
    """Train until `config.steps`, resuming from `out/checkpoint.pth`; returns the final checkpoint.

    `command` is recorded in the checkpoint, so that an export from it can name how it was trained.
    """
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pth"
    G, D, ema, opt_G, opt_D = build_models(config, device)
    data_rng = torch.Generator().manual_seed(config.seed)
    step, elapsed, resumed_step = 0, 0.0, None
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path)
        for module, key in ((G, "G"), (D, "D"), (ema, "ema"), (opt_G, "opt_G"), (opt_D, "opt_D")):
            module.load_state_dict(state[key])
        step, elapsed = state["step"], state["elapsed_s"]
        resumed_step = step
        torch.set_rng_state(state["torch_rng"])
        data_rng.set_state(state["data_rng"])
        print(f"resuming {checkpoint_path} at step {step}")

    def checkpoint() -> dict:
        state = {
            "G": G.state_dict(),
            "D": D.state_dict(),
            "ema": ema.state_dict(),
            "opt_G": opt_G.state_dict(),
            "opt_D": opt_D.state_dict(),
            "step": step,
            "elapsed_s": elapsed,
            "torch_rng": torch.get_rng_state(),
            "data_rng": data_rng.get_state(),
            "train_config": {**asdict(config), "betas": list(config.betas)},
            "generator_config": DEMO_GENERATOR_CONFIG,
            "command": command,
        }
        atomic_torch_save(state, checkpoint_path)
        return state

    if step >= config.steps:
        return checkpoint()
    pool = world_pool(config.pool_size)
    writer = run_writer(out / "tensorboard", resumed_step)
    fixed_z = torch.randn(64, G.dim_z, generator=torch.Generator().manual_seed(config.seed + 1)).to(device)
    started = time.time() - elapsed
    with progress_bar(total=config.steps, initial=step, desc="demo GAN") as bar:
        while step < config.steps:
            losses = train_step(G, D, opt_G, opt_D, pool, config, data_rng, device)
            step += 1
            update_ema(ema, G, config.ema_decay if step > config.ema_start else 0.0)
            elapsed = time.time() - started
            bar.update(1)
            if step % config.log_every == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in losses.items()})
                for key, value in losses.items():
                    writer.add_scalar(f"train/{key}", value, step)
            if step % config.sample_every == 0 or step == config.steps:
                with torch.no_grad():
                    samples = generate(copy.deepcopy(ema).train(), fixed_z)
                grid = make_grid(samples, nrow=8, normalize=True, value_range=(-1, 1))
                writer.add_image("samples/ema", grid, step)
            if step % config.checkpoint_every == 0 or step == config.steps:
                state = checkpoint()
    writer.close()
    return state


def export(state: dict, assets_dir: Path, samples_path: Path, config: GANTrainConfig, command: str) -> Path:
    """Save the EMA generator (BN statistics rebuilt), its config, provenance and a sample grid."""
    assets_dir.mkdir(parents=True, exist_ok=True)
    generator = Generator(**state["generator_config"])
    generator.load_state_dict(state["ema"])
    rebuild_bn_statistics(generator, config.bn_rebuild_batches, config.bn_rebuild_batch_size, config.seed)
    weights_path = assets_dir / "generator.pth"
    atomic_torch_save(generator.state_dict(), weights_path)
    (assets_dir / "generator_config.json").write_text(json.dumps(state["generator_config"], indent=2) + "\n")
    loaded = make_big_gan(weights_path, config=state["generator_config"], device="cpu")
    with torch.no_grad():
        z = torch.randn(64, loaded.dim_z, generator=torch.Generator().manual_seed(config.seed + 1))
        samples = loaded(z)
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    save_image(samples, samples_path, nrow=8, normalize=True, value_range=(-1, 1))
    write_provenance(
        assets_dir / "PROVENANCE.md", state, command, config.bn_rebuild_batches, config.bn_rebuild_batch_size
    )
    return weights_path


def write_provenance(path: Path, state: dict, command: str, bn_batches: int, bn_batch_size: int) -> None:
    """The generator section of PROVENANCE.md; a direction section already there is kept."""
    keep = ""
    if path.exists():
        text = path.read_text()
        if "## Direction" in text:
            keep = "\n" + text[text.index("## Direction") :]
    size_mb = (path.parent / "generator.pth").stat().st_size / 1e6
    path.write_text(
        "# Demo assets: provenance\n\n"
        "Generated by this repository's code from the procedural world in demo/world.py (GAN-training "
        "seed range only); no external data or weights.\n\n"
        "## Generator (generator.pth, generator_config.json)\n\n"
        f"- trained with: `{state.get('command', 'not recorded in the checkpoint')}`\n"
        f"- exported with: `{command}`\n"
        f"- exported: {datetime.date.today().isoformat()}\n"
        f"- steps: {state['step']} (each: {state['train_config']['D_steps']} D steps + 1 G step), "
        f"wall time {state['elapsed_s'] / 60:.1f} min (threads and device: see the command)\n"
        "- weights: EMA generator; eval-mode BN statistics averaged over "
        f"{bn_batches} no-grad batches of {bn_batch_size}, BN layers in train mode; {size_mb:.2f} MB\n"
        f"- generator config: `{json.dumps(state['generator_config'])}`\n"
        f"- training config: `{json.dumps(state['train_config'])}`\n" + keep
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo.train_gan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="run folder: checkpoint.pth, tensorboard/"
    )
    parser.add_argument("--export", action="store_true", help="only export from the checkpoint in --out")
    parser.add_argument(
        "--assets_dir",
        type=Path,
        default=ASSETS_DIR,
        metavar="DIR",
        help="export folder (default: demo/assets)",
    )
    parser.add_argument(
        "--samples_path",
        type=Path,
        default=Path("images/demo_gan_samples.png"),
        metavar="PNG",
        help="sample grid of the exported generator (default: images/demo_gan_samples.png)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA if available)")
    add_flags(parser, MachineOptions, defaults=True)
    add_flags(parser.add_argument_group("training"), GANTrainConfig, defaults=True)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = from_namespace(GANTrainConfig, args)
    machine = from_namespace(MachineOptions, args)
    check_fields(config, machine)
    if machine.threads is not None:
        torch.set_num_threads(machine.threads)
    command = "python -m demo.train_gan " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.export:
        checkpoint_path = args.out / "checkpoint.pth"
        if not checkpoint_path.exists():
            raise MissingInputError(f"--export: no checkpoint at {checkpoint_path}; train first")
        state = load_checkpoint(checkpoint_path)
    else:
        state = train(args.out, config, resolve_device(args.device), command)
    weights_path = export(state, args.assets_dir, args.samples_path, config, command)
    print(f"exported step {state['step']} to {weights_path}; samples in {args.samples_path}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
