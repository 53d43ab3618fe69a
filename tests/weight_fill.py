"""The deterministic weight fill the reference fixtures were recorded with (tests/fixtures/README.md)."""

import torch


def fill_state_dict(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    filled = {}
    for index, key in enumerate(sorted(state)):
        tensor = state[key]
        if not tensor.is_floating_point():
            filled[key] = tensor.clone()
            continue
        g = torch.Generator().manual_seed(seed * 1_000_003 + index)
        name = key.rsplit(".", 1)[-1]
        if name in ("stored_var", "running_var"):
            value = torch.rand(tensor.shape, generator=g) + 0.5
        elif name in ("stored_mean", "running_mean"):
            value = 0.1 * torch.randn(tensor.shape, generator=g)
        elif tensor.dim() == 1 and name in ("weight", "gain"):
            value = 1.0 + 0.1 * torch.randn(tensor.shape, generator=g)
        elif tensor.dim() >= 2:
            value = torch.randn(tensor.shape, generator=g) / tensor[0].numel() ** 0.5
        else:
            value = 0.1 * torch.randn(tensor.shape, generator=g)
        filled[key] = value.to(tensor.dtype)
    return filled


def fill_module(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    module.load_state_dict(fill_state_dict(module.state_dict(), seed), strict=True)
    return module.eval()
