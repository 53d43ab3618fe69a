"""The BigGAN discriminator at 32 pixels, unconditional, built from the project's spectral-norm layers.

Only the demo needs a discriminator (to train its own generator), so it lives here rather than in
BigGAN/, which holds what loading published generators requires.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from BigGAN.model.layers import SNConv2d, SNLinear

# BigGAN-PyTorch's D_arch[32]: channel multipliers of D_ch and which blocks halve the resolution.
D_ARCH_32 = {"in": [None, 4, 4, 4], "out": [4, 4, 4, 4], "downsample": [True, True, False, False]}


class DBlock(nn.Module):
    """Residual down-block; the first block skips the leading ReLU so the raw image reaches conv1."""

    def __init__(self, in_channels: int, out_channels: int, make_conv, preactivation: bool, downsample: bool):
        super().__init__()
        self.preactivation = preactivation
        self.downsample = downsample
        self.conv1 = make_conv(in_channels, out_channels)
        self.conv2 = make_conv(out_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or downsample
        if self.learnable_sc:
            self.conv_sc = make_conv(in_channels, out_channels, kernel_size=1, padding=0)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.preactivation:
            if self.learnable_sc:
                x = self.conv_sc(x)
            return F.avg_pool2d(x, 2) if self.downsample else x
        if self.downsample:
            x = F.avg_pool2d(x, 2)
        return self.conv_sc(x) if self.learnable_sc else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        return h + self.shortcut(x)


class Discriminator(nn.Module):
    """Unconditional 32-px BigGAN discriminator: one real-valued score per image (hinge loss)."""

    def __init__(self, D_ch: int = 8, SN_eps: float = 1e-6, num_D_SVs: int = 1, num_D_SV_itrs: int = 1):
        super().__init__()
        make_conv = functools.partial(SNConv2d, num_svs=num_D_SVs, num_itrs=num_D_SV_itrs, eps=SN_eps)
        in_channels = [3] + [D_ch * m for m in D_ARCH_32["in"][1:]]
        out_channels = [D_ch * m for m in D_ARCH_32["out"]]
        self.blocks = nn.ModuleList(
            DBlock(c_in, c_out, make_conv, preactivation=index > 0, downsample=down)
            for index, (c_in, c_out, down) in enumerate(
                zip(in_channels, out_channels, D_ARCH_32["downsample"], strict=True)
            )
        )
        self.linear = SNLinear(out_channels[-1], 1, num_svs=num_D_SVs, num_itrs=num_D_SV_itrs, eps=SN_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scores [B] for images [B, 3, 32, 32] in [-1, 1]."""
        for block in self.blocks:
            x = block(x)
        return self.linear(F.relu(x).sum(dim=(2, 3))).squeeze(1)
