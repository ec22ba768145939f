"""matdiff - symbolic gradients of matrix expressions, compiled in process.

    import numpy as np, matdiff
    f = matdiff.compile("X : matrix(n, k)\\nW : matrix(k, m)\\nb : matrix(n, m)\\n"
                        "y = ||X*W + b||_F^2")
    y = f(X=X, W=W, b=b)              # the value
    y, g = f.grad(X=X, W=W, b=b)      # g['X'], g['W'], g['b']
    f.formulas                        # {'X': "2*(X*W + b)*W'", ...}

A pure-Python package over libmatdiff.so (ctypes): see docs/PYTHON.md.
matdiff.torch wraps a compiled function as a torch.autograd.Function; it
is imported on first use, so that `import matdiff` needs only NumPy.

__libpath__ is the libmatdiff.so loaded, __libsource__ how it was found:
"install", "build" (a source tree's build/pic/), "MATDIFF_LIB" or "loader";
__libversion__ is its md_version(), which must be this package's version.
"""
# First: _lib checks the library against it while the package is imported.
__version__ = "0.1.0"

from ._errors import CompileError, Error, EvalError, ShapeError
from ._function import Function, Input, Sym, compile, load
from ._lib import LIBPATH as __libpath__
from ._lib import LIBSOURCE as __libsource__
from ._lib import LIBVERSION as __libversion__

__all__ = ["compile", "load", "Function", "Input", "Sym", "Error", "CompileError",
           "ShapeError", "EvalError"]


def __getattr__(name):
    # `matdiff.torch` without importing torch at `import matdiff`.
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError("module 'matdiff' has no attribute %r" % name)
