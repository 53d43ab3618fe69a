"""Loading U-Net weights strictly: Pytorch-UNet state dicts (the released u_net_imagenet.pth, a run's
segmentation.pth) and training checkpoints (checkpoint.pth, whose "model" entry is such a state dict).

The layout is read off the file itself: the base width from the first convolution, transposed-
convolution ups from their weights, so a checkpoint of any width loads without being told it.
"""

from pathlib import Path

import torch

from UNet.unet_model import UNet
from utils.device import resolve_device
from utils.weights import WeightsError, as_state_dict, load_state_dict_strictly, load_torch_file

# The U-Nets the authors released, where `bash download_all.sh --unets` puts them.
RELEASED_UNETS = {
    "imagenet": Path("pretrained/u_net_imagenet.pth"),
    "cub": Path("pretrained/u_net_cub2002011.pth"),
    "flowers": Path("pretrained/u_net_flowers.pth"),
}
DOWNLOAD_HINT = (
    "run `bash download_all.sh --unets` to fetch the released U-Nets into pretrained/ "
    f"({', '.join(path.name for path in RELEASED_UNETS.values())}), or pass the path of a trained "
    "segmentation.pth"
)
FIRST_CONV = "inc.double_conv.0.weight"


def unet_layout(state: dict[str, torch.Tensor], source: str) -> dict:
    """The `UNet` arguments that fit a state dict: input channels, classes, base width, up-sampling."""
    if FIRST_CONV not in state or "outc.conv.weight" not in state:
        raise WeightsError(f"{source} is not a U-Net state dict: it has no {FIRST_CONV} or outc.conv.weight")
    width, channels = state[FIRST_CONV].shape[:2]
    return {
        "n_channels": channels,
        "out_channels": state["outc.conv.weight"].shape[0],
        "base_width": width,
        "bilinear": "up1.up.weight" not in state,
    }


def read_unet_state(weights_path: str | Path) -> dict[str, torch.Tensor]:
    """The U-Net state dict of a weights file or of a training checkpoint's "model" entry."""
    loaded = load_torch_file(weights_path, DOWNLOAD_HINT)
    if isinstance(loaded, dict) and isinstance(loaded.get("model"), dict) and "step" in loaded:
        loaded = loaded["model"]
    return as_state_dict(loaded, weights_path)


def load_unet(
    weights_path: str | Path, device: str | torch.device | None = None, base_width: int | None = None
) -> UNet:
    """A U-Net in eval mode on `device` (None: CUDA if available) with the weights of `weights_path`.

    The layout comes from the file; `base_width`, when given, must match it.
    """
    state = read_unet_state(weights_path)
    layout = unet_layout(state, str(weights_path))
    if base_width is not None and base_width != layout["base_width"]:
        raise WeightsError(
            f"{weights_path} holds a U-Net of base width {layout['base_width']}, not {base_width}: "
            "leave base_width out to take the file's"
        )
    model = UNet(**layout)
    load_state_dict_strictly(model, state, str(weights_path))
    return model.to(resolve_device(device)).eval()
