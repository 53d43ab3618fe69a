"""Segment one uploaded image with a chosen U-Net, through segment.py's own reading, inference and
writing, so that the mask offered for download is the file `segment.py` would write for it."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from data import read_rgb, to_signed_tensor
from demo.assets import DEMO_UNET_PATH
from postprocessing import MAX_MEGAPIXELS, oversized
from refinement import make_refiner
from segment import predict_masks, save_gray
from UNet.unet_load import RELEASED_UNETS, load_unet
from utils.errors import InputError, MissingInputError
from visualization import PREDICTION_COLOR, overlay_masks

DEMO_CHOICE = "demo (shipped, trained on the 32-px world)"
RUN_CHOICE = "a run's segmentation.pth (path below)"
# The shorter side each U-Net sees by default: the demo's was trained at 32 px, the others at 128.
DEFAULT_RESIZE = {DEMO_CHOICE: 32}
SEGMENT_RESIZE = 128  # segment.py's --resize_to default


def unet_choices(own: Path | None = None, root: Path = Path(".")) -> dict[str, Path | None]:
    """The U-Nets on offer: `own` first when given (app.py --unet), the demo's, the released ones that
    are downloaded, and a path typed in."""
    choices: dict[str, Path | None] = {f"given: {own}": own} if own else {}
    choices[DEMO_CHOICE] = DEMO_UNET_PATH
    for name, path in RELEASED_UNETS.items():
        if (root / path).is_file():
            choices[f"released: {name} ({path.name})"] = root / path
    choices[RUN_CHOICE] = None
    return choices


@dataclass
class Segmentation:
    probability: Image.Image
    mask: Image.Image
    overlay: Image.Image
    mask_file: Path


class ImageSegmenter:
    """Loaded U-Nets by path (loading is the slow part), and where the mask files go."""

    def __init__(self, device: str = "cpu", out_dir: Path | None = None):
        self.device = device
        self.out_dir = Path(out_dir or tempfile.mkdtemp(prefix="bgw_app_"))
        self._models: dict[tuple[Path, float], torch.nn.Module] = {}

    def model(self, path: Path) -> torch.nn.Module:
        """The U-Net of `path`, loaded once per version of the file."""
        if not Path(path).is_file():
            raise MissingInputError(f"U-Net weights {path} do not exist: give the path of a segmentation.pth")
        key = (Path(path).resolve(), Path(path).stat().st_mtime)
        if key not in self._models:
            self._models[key] = load_unet(path, self.device).eval()
        return self._models[key]

    def segment(
        self, image_path: str | Path, unet_path: Path, thr: float, resize_to: int | None, refine: str
    ) -> Segmentation:
        image_path = Path(image_path)
        try:
            rgb = read_rgb(image_path)
        except (OSError, ValueError, Image.DecompressionBombError) as error:  # not an image, truncated, huge
            raise InputError(
                f"{image_path.name} is not an image that can be read ({error}): upload a PNG, JPEG, "
                "BMP, TIFF or WebP file"
            ) from error
        problem = oversized(*rgb.size, resize_to, refine != "none", MAX_MEGAPIXELS)
        if problem:
            raise InputError(f"{image_path.name}: {problem.replace('--max_megapixels', 'the limit')}")
        image = to_signed_tensor(rgb)
        model = self.model(unet_path)
        probabilities, masks = predict_masks(model, image[None], resize_to, thr, make_refiner(refine))
        probability, mask = probabilities[0].cpu(), masks[0].cpu()
        # segment.py's files for this image: the mask, and with --probabilities the map
        mask_file = self.out_dir / f"{image_path.stem}.png"
        probability_file = self.out_dir / "probabilities" / mask_file.name
        save_gray(mask, mask_file)
        save_gray(probability, probability_file)
        tinted = overlay_masks(image[None], mask[None], PREDICTION_COLOR)[0]
        overlay = Image.fromarray(tinted.mul(255).round().byte().permute(1, 2, 0).numpy())
        return Segmentation(read_picture(probability_file), read_picture(mask_file), overlay, mask_file)


def read_picture(path: Path) -> Image.Image:
    with Image.open(path) as picture:
        return picture.copy()
