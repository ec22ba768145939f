"""setup.py - `pip install ./python`: the matdiff package alone, pure Python.

It needs libmatdiff.so at run time, which `make install` puts on the loader's
path, or which MATDIFF_LIB names (see docs/PYTHON.md). No pyproject.toml: pip
then builds with the setuptools already installed (Debian's python3-setuptools)
instead of fetching one, so the install works offline.
"""
import re

from setuptools import setup

with open("matdiff/__init__.py") as f:
    VERSION = re.search(r'^__version__ = "(.*)"$', f.read(), re.M).group(1)

setup(
    name="matdiff",
    version=VERSION,
    description="Symbolic gradients of matrix expressions, compiled in process",
    packages=["matdiff"],
    python_requires=">=3.8",
    install_requires=["numpy"],
)
