"""The steps of `bigbigan2biggan.ipynb`, kept here so that the notebook holds parameters and calls only."""

import importlib.util
from pathlib import Path

import torch
from IPython.display import display
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid

from BigGAN.gan_load import make_big_gan
from tf_tools.bigbigan2biggan import convert_file
from tf_tools.tfhub_module import checkpoint_prefix
from utils.errors import MissingInputError
from visualization import to_unit_range


def prepare_variables(module_dir: str | Path, h5_path: str | Path) -> bool:
    """Step 1 unless `h5_path` exists; False, with what to do printed, when it cannot run."""
    if Path(h5_path).is_file():
        print(f"using the variables in {h5_path} (delete it to dump {module_dir} again)")
        return True
    try:
        checkpoint_prefix(module_dir)
    except MissingInputError as error:
        print(f"{error}\nThe steps below do nothing until then.")
        return False
    if importlib.util.find_spec("tensorflow") is None:
        print(f"step 1 reads {module_dir} with TensorFlow: pip install -r requirements-tf.txt")
        return False
    from tf_tools.tfhub_to_h5 import dump_module  # imports TensorFlow, which step 2 does without

    print(f"wrote {dump_module(module_dir, h5_path)} variables of {module_dir} to {h5_path}")
    return True


def convert_variables(h5_path: str | Path, out_path: str | Path, config: dict | None = None) -> None:
    """Step 2: the generator state dict from the variables file."""
    print(f"wrote {convert_file(h5_path, out_path, config)} tensors to {out_path}")


def _images(weights_path: str | Path, count: int, seed: int, config: dict | None) -> torch.Tensor:
    """Images of latents `randn(count, dim_z)` drawn with `seed`, on the CPU."""
    generator = make_big_gan(weights_path, device="cpu", config=config)
    z = torch.randn(count, generator.dim_z, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return generator(z)


def _show_rows(*rows: torch.Tensor) -> None:
    grid = make_grid(to_unit_range(torch.cat(rows)), nrow=len(rows[0]), padding=2, pad_value=1.0)
    display(to_pil_image(grid))


def show_samples(weights_path: str | Path, count: int, seed: int, config: dict | None = None) -> None:
    """A row of samples of the converted generator."""
    _show_rows(_images(weights_path, count, seed, config))


def compare_with_existing(
    converted: str | Path, existing: str | Path, count: int, seed: int, config: dict | None = None
) -> None:
    """Samples of both generators from the same latents (converted above, existing below)."""
    if not Path(existing).is_file():
        print(f"no {existing} to compare with (download_all.sh fetches the published one)")
        return
    ours, theirs = (_images(path, count, seed, config) for path in (converted, existing))
    print(f"largest pixel difference to {existing}: {(ours - theirs).abs().max().item():.3g} (range [-1, 1])")
    _show_rows(ours, theirs)
