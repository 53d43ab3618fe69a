"""A virtual environment that sees this interpreter's packages, whether it runs in a venv or not.

`venv --system-site-packages` sees the base interpreter's packages only: made from inside a venv, it
misses that venv's. A `.pth` file listing this interpreter's site-packages folders adds them instead
(after the new environment's own, so what is installed there wins).

    python3 tests/environments.py DIR   # makes DIR, with pip; prints its python
"""

import site
import subprocess
import sys
from pathlib import Path


def site_folders() -> list[str]:
    """This interpreter's site-packages folders (its venv's and, where seen, the base's and the user's)."""
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return [folder for folder in dict.fromkeys(folders) if folder in sys.path and Path(folder).is_dir()]


def venv_seeing_these_packages(path: Path, with_pip: bool = True) -> Path:
    """Make a venv at `path` that also imports this interpreter's packages; its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(path)], check=True
    )
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "outer_environment.pth").write_text("".join(f"{folder}\n" for folder in site_folders()))
    return python


if __name__ == "__main__":
    print(venv_seeing_these_packages(Path(sys.argv[1])))
