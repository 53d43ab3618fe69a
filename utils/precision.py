"""Mixed precision: bf16 autocast for the generator's synthesis and the U-Net's training steps.

bf16 keeps float32's range, so no loss scaling is needed. Evaluation and the synthetic test loss stay
in float32, so that scores do not depend on the precision a run was trained with.
"""

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16")


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """None means bf16 on CUDA (tensor cores) and fp32 on the CPU (where bf16 helps only some CPUs)."""
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
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
