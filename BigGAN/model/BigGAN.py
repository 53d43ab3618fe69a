"""The BigGAN generator (Brock et al. 2019) in the BigGAN-PyTorch module and state-dict layout.

`Generator(**config)` takes BigGAN-PyTorch's keyword names; `forward(z, y)` takes the latent and
the class condition *already embedded* by `self.shared`, as BigGAN-PyTorch does.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from BigGAN.model.layers import Attention, BatchNorm2d, ConditionalBatchNorm2d, SNConv2d, SNLinear

# Channel multipliers of G_ch per resolution, as in BigGAN-PyTorch's G_arch.
ARCH_CHANNELS = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
    512: ([16, 16, 8, 8, 4, 2, 1], [16, 8, 8, 4, 2, 1, 1]),
}

# BigGAN-PyTorch configuration entries that only concern training, the discriminator or
# multi-GPU/precision set-up. They are accepted so that its config dicts can be passed as they are.
TRAINING_ONLY_OPTIONS = frozenset(
    {
        "G_param",
        "D_param",
        "D_ch",
        "D_wide",
        "D_attn",
        "D_nl",
        "D_activation",
        "D_lr",
        "G_lr",
        "D_B1",
        "D_B2",
        "G_B1",
        "G_B2",
        "adam_eps",
        "D_init",
        "G_init",
        "skip_init",
        "no_optim",
        "G_fp16",
        "D_fp16",
        "G_mixed_precision",
        "D_mixed_precision",
        "accumulate_stats",
        "num_standing_accumulations",
        "G_eval_mode",
        "cross_replica",
        "mybn",
        "num_D_SVs",
        "num_D_SV_itrs",
        "G_nl",
        "D_depth",
        "G_depth",
        "D_mixed",
        "G_kernel_size",
        "G_num_layers",
    }
)


def make_activation(activation: nn.Module | str) -> nn.Module:
    """`G_activation` as a module; strings ('relu', 'ReLU(inplace=True)') come from JSON configs."""
    if isinstance(activation, nn.Module):
        return activation
    name = activation.lower().split("(")[0]
    if name in ("relu", "inplace_relu"):
        return nn.ReLU()
    raise ValueError(f"unsupported G_activation {activation!r}: use 'relu'")


def attention_resolutions(G_attn: str) -> set[int]:
    """BigGAN-PyTorch spells attention resolutions as '64' or '32_64'; '0' means none."""
    return {int(item) for item in G_attn.split("_") if int(item) > 0}


class GBlock(nn.Module):
    """Residual up-block: BN-ReLU-up-conv-BN-ReLU-conv plus an up-sampled 1x1-conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int, make_conv, make_bn, activation, upsample):
        super().__init__()
        self.activation = activation
        self.upsample = upsample
        self.conv1 = make_conv(in_channels, out_channels)
        self.conv2 = make_conv(out_channels, out_channels)
        self.learnable_sc = in_channels != out_channels or upsample
        if self.learnable_sc:
            self.conv_sc = make_conv(in_channels, out_channels, kernel_size=1, padding=0)
        self.bn1 = make_bn(in_channels)
        self.bn2 = make_bn(out_channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.activation(self.bn1(x, cond))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = self.conv1(h)
        h = self.activation(self.bn2(h, cond))
        h = self.conv2(h)
        if self.learnable_sc:
            x = self.conv_sc(x)
        return h + x


class Generator(nn.Module):
    def __init__(
        self,
        G_ch: int = 64,
        dim_z: int = 128,
        bottom_width: int = 4,
        resolution: int = 128,
        G_attn: str = "64",
        n_classes: int = 1000,
        G_shared: bool = True,
        shared_dim: int = 0,
        hier: bool = False,
        BN_eps: float = 1e-5,
        SN_eps: float = 1e-12,
        num_G_SVs: int = 1,
        num_G_SV_itrs: int = 1,
        G_activation: nn.Module | str = "relu",
        norm_style: str = "bn",
        **training_only,
    ):
        super().__init__()
        unknown = set(training_only) - TRAINING_ONLY_OPTIONS
        if unknown:
            raise TypeError(f"Generator got unknown config entries: {sorted(unknown)}")
        if resolution not in ARCH_CHANNELS:
            raise ValueError(f"resolution {resolution} not in {sorted(ARCH_CHANNELS)}")
        if norm_style != "bn":
            raise ValueError(f"norm_style {norm_style!r} is not supported: only 'bn'")
        if not G_shared:
            raise ValueError("G_shared=False (per-class BN embeddings) is not supported")
        in_mults, out_mults = ARCH_CHANNELS[resolution]
        self.in_channels = [G_ch * m for m in in_mults]
        self.out_channels = [G_ch * m for m in out_mults]
        self.bottom_width = bottom_width
        self.resolution = resolution
        self.n_classes = n_classes
        self.shared_dim = shared_dim if shared_dim > 0 else dim_z
        self.hier = hier
        num_slots = len(self.in_channels) + 1 if hier else 1
        self.z_chunk_size = dim_z // num_slots if hier else 0
        self.dim_z = self.z_chunk_size * num_slots if hier else dim_z
        self.activation = make_activation(G_activation)

        make_conv = functools.partial(SNConv2d, num_svs=num_G_SVs, num_itrs=num_G_SV_itrs, eps=SN_eps)
        make_linear = functools.partial(SNLinear, num_svs=num_G_SVs, num_itrs=num_G_SV_itrs, eps=SN_eps)
        make_bn = functools.partial(
            ConditionalBatchNorm2d,
            cond_dim=self.shared_dim + self.z_chunk_size,
            make_linear=functools.partial(make_linear, bias=False),
            eps=BN_eps,
        )
        self.shared = nn.Embedding(n_classes, self.shared_dim)
        self.linear = make_linear(self.dim_z // num_slots, self.in_channels[0] * bottom_width**2)
        attention_at = attention_resolutions(G_attn)
        blocks = []
        for index, (c_in, c_out) in enumerate(zip(self.in_channels, self.out_channels, strict=True)):
            stage = [GBlock(c_in, c_out, make_conv, make_bn, self.activation, upsample=True)]
            if bottom_width * 2 ** (index + 1) in attention_at:
                stage.append(Attention(c_out, make_conv))
            blocks.append(nn.ModuleList(stage))
        self.blocks = nn.ModuleList(blocks)
        self.output_layer = nn.Sequential(
            BatchNorm2d(self.out_channels[-1]), self.activation, make_conv(self.out_channels[-1], 3)
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] from latents `z` [B, dim_z] and embedded classes `y` [B, shared_dim]."""
        if self.hier:
            chunks = torch.split(z, self.z_chunk_size, dim=1)
            z = chunks[0]
            conds = [torch.cat([y, chunk], dim=1) for chunk in chunks[1:]]
        else:
            conds = [y] * len(self.blocks)
        h = self.linear(z)
        h = h.view(h.size(0), -1, self.bottom_width, self.bottom_width)
        for stage, cond in zip(self.blocks, conds, strict=True):
            for block in stage:
                h = block(h, cond)
        return torch.tanh(self.output_layer(h))
