"""conftest.py - the Python tests import the source tree's package
(python/matdiff), which loads the tree's build/pic/libmatdiff.so
(`make shared`; `make test` builds it first)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

# The notebook's loss with symbolic sizes, as in the example.
SEED = "X : matrix(n, k)\nW : matrix(k, m)\nb : matrix(n, m)\ny = ||X*W + b||_F^2\n"
