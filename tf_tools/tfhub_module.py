"""Where the TF-Hub BigBiGAN module comes from and where a downloaded copy keeps its variables."""

from pathlib import Path

from utils.errors import MissingInputError

MODULE_URL = "https://tfhub.dev/deepmind/bigbigan-resnet50/1"
KAGGLE_URL = "https://www.kaggle.com/models/deepmind/bigbigan"


def download_help(module_dir: str | Path) -> str:
    """What to download, and where to put it, for the module folder `module_dir`."""
    module_dir = Path(module_dir)
    return (
        f"no TF-Hub module in {module_dir}: download the BigBiGAN module {MODULE_URL} (TF1 Hub format; "
        f"tfhub.dev now forwards to Kaggle Models, {KAGGLE_URL}) and extract the archive into "
        f"{module_dir}, so that {module_dir / 'variables' / 'variables.index'} and "
        f"{module_dir / 'variables' / 'variables.data-00000-of-00001'} exist (next to saved_model.pb)"
    )


def checkpoint_prefix(module_dir: str | Path) -> Path:
    """The prefix of the module's variables checkpoint, `DIR/variables/variables`."""
    prefix = Path(module_dir) / "variables" / "variables"
    if not prefix.with_name("variables.index").is_file():
        raise MissingInputError(download_help(module_dir))
    return prefix
