"""The top-level modules, found rather than listed: the scripts and modules users know from the original."""

from pathlib import Path

from setuptools import setup

setup(py_modules=sorted(path.stem for path in Path(__file__).parent.glob("*.py") if path.stem != "setup"))
