"""_errors.py - the exceptions the package raises."""


class Error(Exception):
    """Base class of matdiff's errors."""


class CompileError(Error):
    """The source does not compile: a syntax, name or shape error.

    str(e) is the library's three-line diagnostic (FILE:LINE:COL: error:
    message, the source line, a caret); .line and .col are 1-based (0 when
    the error is not about one place), .reason is the message alone.
    """

    def __init__(self, diagnostic, line=0, col=0, reason=None):
        super().__init__(diagnostic)
        self.line, self.col = line, col
        self.reason = reason if reason is not None else diagnostic


class ShapeError(Error, ValueError):
    """An array does not have the shape its input was declared with, or
    binds a symbolic size to a value another array already gave it another
    value for."""


class EvalError(Error):
    """The compiled function failed at run time, e.g. `inv: the matrix is
    singular`."""
