"""Smoke test of bench/run.py on tiny sizes: every row is there (the numbers are not checked)."""

import pytest
import torch

from bench.run import Sizes, markdown_table, run_benchmarks

TINY = Sizes(
    side=16,
    filter_batch=2,
    fmax_maps=2,
    generator_batch=1,
    synthetic_batch=2,
    unet_batch=2,
    unet_width=4,
    unet_size=32,
    demo_batch=8,
    demo_steps=1,
    repeats=1,
    generator_repeats=1,
    generator_config={"G_ch": 4, "resolution": 32, "G_attn": "0"},
)


@pytest.mark.slow
def test_bench_prints_every_row():
    table = markdown_table(run_benchmarks(TINY, torch.device("cpu")))
    lines = table.splitlines()
    assert lines[0] == "| name | ours | reference | ratio or value | unit |"
    names = [line.split(" | ")[0].lstrip("| ") for line in lines[2:]]
    demo = "demo training, batch 8, 1 steps, "
    expected = [
        "two-peak filter",
        "two-peak filter, batched bincount path",
        "connected components",
        "F_max (255 thresholds)",
        "generator G(z), batch 1: W/σ cached vs recomputed",
        "generator pair G(z), G(z + shift), fp32",
        "generator pair, bf16 autocast vs fp32",
        "generator pair, channels-last vs NCHW, fp32",
        "masks: default (fp32, channels-last) agreeing with fp32",
        "synthetic batch of 2, default filters, previous default (fp32, NCHW, every latent, ",
        "synthetic batch of 2, default filters, bf16 alone (bf16, NCHW, every latent, ",
        "synthetic batch of 2, default filters, channels-last alone (fp32, channels-last, every latent, ",
        "synthetic batch of 2, default filters, latents as needed alone (fp32, NCHW, latents as needed, ",
        "synthetic batch of 2, default filters, default (fp32, channels-last, latents as needed, ",
        "U-Net step, batch 2 at 32 px, width 4, previous default (fp32, NCHW)",
        "U-Net step, batch 2 at 32 px, width 4, bf16 alone (bf16, NCHW)",
        "U-Net step, batch 2 at 32 px, width 4, channels-last alone (fp32, channels-last)",
        "U-Net step, batch 2 at 32 px, width 4, default (fp32, channels-last)",
        "training sample, full config: default vs previous default",
        f"{demo}previous default (fp32, NCHW, every latent, synthesis overlapped)",
        f"{demo}bf16 alone (bf16, NCHW, every latent, synthesis overlapped)",
        f"{demo}channels-last alone (fp32, channels-last, every latent, synthesis o",
        f"{demo}latents as needed alone (fp32, NCHW, latents as needed, synthesis o",
        f"{demo}no overlap alone (fp32, NCHW, every latent, synthesis in the traini",
        f"{demo}default (fp32, channels-last, latents as needed, synthesis in the t",
        f"{demo}default, synthesis overlapped (fp32, channels-last, latents as needed, synthesis overlapped)",
        "demo training, DDP 2 processes vs 1",
    ]
    assert len(names) == len(expected)
    assert all(name.startswith(prefix) for name, prefix in zip(names, expected, strict=True))
    assert all("×" in line for line in lines[2:6])
