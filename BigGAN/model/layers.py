"""Layers of the BigGAN generator: spectral norm, (conditional) batch norm, self-attention.

Buffer and parameter names follow BigGAN-PyTorch exactly (`u0`, `sv0`, `stored_mean`, `stored_var`,
`gain`, `bias`, `gamma`) so that its checkpoints, and the published BigBiGAN one, load unchanged.
"""

import torch
import torch.nn.functional as F
from torch import nn


def project(x: torch.Tensor, onto: torch.Tensor) -> torch.Tensor:
    """Projection of the row vector `x` onto the row vector `onto`."""
    return (x @ onto.t()) * onto / (onto @ onto.t())


def power_iteration(
    weight: torch.Tensor, us: list[torch.Tensor], update: bool, eps: float
) -> list[torch.Tensor]:
    """Singular values of `weight` ([out, in]) estimated from the stored left vectors `us`.

    Each vector is orthogonalised against the ones before it (Gram-Schmidt), so several vectors
    estimate the leading singular values in turn. The vectors are updated in place only when
    `update` is set (training); the returned values keep the gradient with respect to `weight`.
    """
    left, right, sigmas = [], [], []
    for u in us:
        with torch.no_grad():
            v = u @ weight
            for prev in right:
                v = v - project(v, prev)
            v = F.normalize(v, eps=eps)
            right.append(v)
            u_new = v @ weight.t()
            for prev in left:
                u_new = u_new - project(u_new, prev)
            u_new = F.normalize(u_new, eps=eps)
            left.append(u_new)
            if update:
                u.copy_(u_new)
        sigmas.append(torch.squeeze((v @ weight.t()) @ u_new.t()))
    return sigmas


class SpectralNorm:
    """Mixin dividing `self.weight` by its largest singular value (BigGAN-PyTorch's `SN`).

    `u{i}` are the power-iteration vectors, `sv{i}` a training-time log of the singular values.
    In eval mode the stored vectors are used as they are, so a loaded model is deterministic, and
    W / sigma is computed once and reused until the weight or a vector changes (see
    `_eval_cache_key`). In-place changes made through `.data` bypass the version counters that
    this relies on: call `clear_normalized_weight_cache()` after such a change.
    """

    def init_spectral_norm(self, num_svs: int, num_itrs: int, num_outputs: int, eps: float) -> None:
        self.num_svs = num_svs
        self.num_itrs = num_itrs
        self.sn_eps = eps
        for i in range(num_svs):
            self.register_buffer(f"u{i}", torch.randn(1, num_outputs))
            self.register_buffer(f"sv{i}", torch.ones(1))
        self.clear_normalized_weight_cache()
        self.register_load_state_dict_post_hook(_clear_cache_after_load)

    def clear_normalized_weight_cache(self) -> None:
        self._normalized_cache: tuple[tuple, list[torch.Tensor], torch.Tensor] | None = None

    def normalized_weight(self) -> torch.Tensor:
        key = self._eval_cache_key()
        if key is None:
            self.clear_normalized_weight_cache()
            return self._compute_normalized_weight()
        if self._normalized_cache is None or self._normalized_cache[0] != key:
            with torch.no_grad():
                normalized = self._compute_normalized_weight()
            # The aliases keep the inputs' memory alive, so no other tensor can take their addresses.
            self._normalized_cache = (key, [tensor.detach() for tensor in self._sn_inputs()], normalized)
        return self._normalized_cache[2]

    def _sn_inputs(self) -> list[torch.Tensor]:
        return [self.weight, *(getattr(self, f"u{i}") for i in range(self.num_svs))]

    def _eval_cache_key(self) -> tuple | None:
        """Everything W / sigma depends on in eval mode, or None where it must be computed afresh: in
        training (the power iteration updates `u`), when autograd needs the graph back to the weight,
        and for inference tensors (they have no version counter)."""
        inputs = self._sn_inputs()
        if (
            self.training
            or (torch.is_grad_enabled() and self.weight.requires_grad)
            or any(tensor.is_inference() for tensor in inputs)
        ):
            return None
        device_type = self.weight.device.type
        return (
            tuple((t.data_ptr(), t._version, t.shape, t.stride(), t.dtype, t.device) for t in inputs),
            torch.is_autocast_enabled(device_type),
            torch.get_autocast_dtype(device_type),
            torch.is_inference_mode_enabled(),
        )

    def _compute_normalized_weight(self) -> torch.Tensor:
        # reshape, not view: a channels_last kernel is not contiguous.
        weight = self.weight.reshape(self.weight.size(0), -1)
        us = [getattr(self, f"u{i}") for i in range(self.num_svs)]
        for _ in range(self.num_itrs):
            sigmas = power_iteration(weight, us, update=self.training, eps=self.sn_eps)
        if self.training:
            with torch.no_grad():
                for i, sigma in enumerate(sigmas):
                    getattr(self, f"sv{i}").fill_(sigma.item())
        return self.weight / sigmas[0]


def _clear_cache_after_load(module: SpectralNorm, incompatible_keys) -> None:
    module.clear_normalized_weight_cache()


class SNConv2d(nn.Conv2d, SpectralNorm):
    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        bias: bool = True,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ):
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, padding=padding, bias=bias)
        self.init_spectral_norm(num_svs, num_itrs, out_channels, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, self.stride, self.padding)


class SNLinear(nn.Linear, SpectralNorm):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        num_svs: int = 1,
        num_itrs: int = 1,
        eps: float = 1e-12,
    ):
        nn.Linear.__init__(self, in_features, out_features, bias=bias)
        self.init_spectral_norm(num_svs, num_itrs, out_features, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale `1 + gain(c)` and shift `bias(c)` are linear in a condition `c`.

    BigGAN-PyTorch's `ccbn` with `norm_style='bn'`: eval uses `stored_mean`/`stored_var`,
    training uses batch statistics and updates the stored ones (momentum 0.1).
    """

    def __init__(self, num_features: int, cond_dim: int, make_linear, eps: float = 1e-5):
        super().__init__()
        self.gain = make_linear(cond_dim, num_features)
        self.bias = make_linear(cond_dim, num_features)
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(num_features))
        self.register_buffer("stored_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gain = (1 + self.gain(cond)).view(cond.size(0), -1, 1, 1)
        bias = self.bias(cond).view(cond.size(0), -1, 1, 1)
        out = F.batch_norm(x, self.stored_mean, self.stored_var, None, None, self.training, 0.1, self.eps)
        return out * gain + bias


class BatchNorm2d(nn.Module):
    """Unconditional batch norm with BigGAN-PyTorch's names (`gain`, `bias`, `stored_*`)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.eps = eps
        self.register_buffer("stored_mean", torch.zeros(num_features))
        self.register_buffer("stored_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.stored_mean, self.stored_var, self.gain, self.bias, self.training, 0.1, self.eps
        )


class Attention(nn.Module):
    """SA-GAN self-attention; keys and values are 2x2 max-pooled, as in BigGAN."""

    def __init__(self, channels: int, make_conv):
        super().__init__()
        self.channels = channels
        self.theta = make_conv(channels, channels // 8, kernel_size=1, padding=0, bias=False)
        self.phi = make_conv(channels, channels // 8, kernel_size=1, padding=0, bias=False)
        self.g = make_conv(channels, channels // 2, kernel_size=1, padding=0, bias=False)
        self.o = make_conv(channels // 2, channels, kernel_size=1, padding=0, bias=False)
        self.gamma = nn.Parameter(torch.tensor(0.0))

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = x.shape
        positions = height * width
        theta = self.theta(x).view(batch, self.channels // 8, positions)
        phi = F.max_pool2d(self.phi(x), 2).view(batch, self.channels // 8, positions // 4)
        g = F.max_pool2d(self.g(x), 2).view(batch, self.channels // 2, positions // 4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)
        attended = torch.bmm(g, beta.transpose(1, 2)).view(batch, self.channels // 2, height, width)
        return x + self.gamma * self.o(attended)
