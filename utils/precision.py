"""Mixed precision: bf16 autocast for the generator's synthesis and the U-Net's training steps.

bf16 keeps float32's range, so no loss scaling is needed. Evaluation and the synthetic test loss stay
in float32, so that scores do not depend on the precision a run was trained with.
"""

import os

import torch
from torch import nn

from utils.errors import InputError

PRECISIONS = ("fp32", "bf16")
# "1" or "0" overrides the detection of native CPU bf16 (the test suite sets "0", so that its runs do
# not depend on the CPU they run on).
CPU_BF16_VARIABLE = "BGW_CPU_BF16"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 autocast made the
    synthesis 2.6x faster (bench/README.md); without it fp32 stays the default. `BGW_CPU_BF16` overrides
    the check."""
    override = os.environ.get(CPU_BF16_VARIABLE, "")
    if override:
        if override not in ("0", "1"):
            raise InputError(f"{CPU_BF16_VARIABLE}={override!r}: set it to 1, 0, or leave it unset")
        return override == "1"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the fallback
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """None means bf16 on CUDA (tensor cores) and on CPUs with native bf16, fp32 on other CPUs."""
    if precision is None:
        native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
        return "bf16" if native else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class AutocastGenerator(nn.Module):
    """A generator run under bf16 autocast, giving float32 images. Autocast is thread-local, so the
    wrapper enters it on every call, in whichever thread synthesises (see gan_mask_gen.MaskStream)."""

    def __init__(self, G: nn.Module, device: torch.device):
        super().__init__()
        self.G = G
        self.device_type = device.type
        self.dim_z = G.dim_z
        self.dim_shift = getattr(G, "dim_shift", G.dim_z)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device_type, dtype=torch.bfloat16)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.G(z).float()

    def gen_shifted(self, z: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.G.gen_shifted(z, shift).float()
