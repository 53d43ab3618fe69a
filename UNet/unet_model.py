"""The U-Net assembly used by the original work (four downs, bilinear ups)."""

import torch
from torch import nn

from UNet.unet_parts import DoubleConv, Down, OutConv, Up


class UNet(nn.Module):
    """Logits `[B, out_channels, H, W]` for images `[B, n_channels, H, W]` of any size >= 16.

    `base_width` 64 is the published model; narrower widths keep the same key layout.
    """

    def __init__(
        self, n_channels: int = 3, out_channels: int = 2, bilinear: bool = True, base_width: int = 64
    ):
        super().__init__()
        self.n_channels = n_channels
        self.out_channels = out_channels
        self.bilinear = bilinear
        self.base_width = base_width
        w = base_width
        self.inc = DoubleConv(n_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 8 * w)
        self.up1 = Up(16 * w, 4 * w, bilinear)
        self.up2 = Up(8 * w, 2 * w, bilinear)
        self.up3 = Up(4 * w, w, bilinear)
        self.up4 = Up(2 * w, w, bilinear)
        self.outc = OutConv(w, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)
