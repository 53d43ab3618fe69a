"""One process of the DDP benchmark row: demo training steps under torchrun, timed by rank 0.

    torchrun --standalone --nproc-per-node 2 -m bench.ddp_worker --steps 10

Each process synthesises its share of the demo preset's batch and DistributedDataParallel averages the
gradients, with the engine's own functions (`train_segmentation.py`), without logging, evaluation or files.
"""

import argparse
import json
import time

import torch

from gan_mask_gen import MaskStream
from train_config import resolve_config
from train_segmentation import _demo_preset, distributed_model, load_inputs, rank_mask_generator
from UNet.unet_model import UNet
from utils import distributed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps after 2 warm-up steps")
    parser.add_argument("--batch_size", type=int, default=64, help="samples per step, all processes together")
    args = parser.parse_args()
    ranks, device = distributed.ranks_from_environment(), torch.device("cpu")
    flags = ["--demo", "--out", "unused", "--device", "cpu", "--batch_size", str(args.batch_size)]
    config = resolve_config(flags, demo_preset=_demo_preset)
    distributed.start(ranks, device)
    try:
        inputs = load_inputs(config, device, main_process=False)
        torch.manual_seed(config.run.seed)
        model = distributed_model(UNet(base_width=config.run.unet_width), ranks, device).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=config.params.rate)
        with MaskStream(rank_mask_generator(inputs, config, ranks, device)) as stream:
            for step in range(2 + args.steps):
                if step == 2:
                    distributed.barrier(ranks)
                    start = time.perf_counter()
                images, masks = next(stream)
                loss = torch.nn.functional.cross_entropy(model(images), masks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            distributed.barrier(ranks)
            seconds = time.perf_counter() - start
        if ranks.is_main:
            samples = args.steps * config.params.batch_size // ranks.world_size * ranks.world_size
            print(json.dumps({"samples_per_s": samples / seconds, "processes": ranks.world_size}))
    finally:
        distributed.finish(ranks)


if __name__ == "__main__":
    main()
