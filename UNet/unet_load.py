"""Loading U-Net weights (Pytorch-UNet state dicts such as u_net_imagenet.pth), strictly."""

from pathlib import Path

import torch

from UNet.unet_model import UNet
from utils.device import resolve_device
from utils.weights import load_state_dict_strictly, read_state_dict

DOWNLOAD_HINT = (
    "run download_all.sh to fetch u_net_imagenet.pth, or pass the path of a trained segmentation.pth"
)


def load_unet(
    weights_path: str | Path, device: str | torch.device | None = None, base_width: int = 64
) -> UNet:
    """A U-Net in eval mode on `device` (None: CUDA if available) with the weights of `weights_path`."""
    model = UNet(base_width=base_width)
    load_state_dict_strictly(model, read_state_dict(weights_path, DOWNLOAD_HINT), str(weights_path))
    return model.to(resolve_device(device)).eval()
