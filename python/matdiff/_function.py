"""_function.py - matdiff.compile, matdiff.load and the Function they
return: one compiled md_function, called with NumPy arrays.

Arrays go in by keyword (or by position, in declaration order), are
converted to C-contiguous float64 when they are not already, and bind the
symbolic sizes from their shapes; the checking is done here, in Python,
from a description of every input's shape read once from the library.
Then one C call does the work, with the GIL released (ctypes does that).
"""
import collections
import ctypes
import os
import weakref

import numpy as np

from . import _lib
from ._errors import CompileError, EvalError, ShapeError

_LIB = _lib.LIB


def _text(b):
    return None if b is None else b.decode("utf-8", "replace")


def compile(source, filename=None):
    """Compile matdiff source text; FILENAME is used only in diagnostics.

    Raises CompileError (with .line, .col) on a syntax or shape error."""
    if isinstance(source, bytes):
        source = source.decode("utf-8")
    if "\0" in source:
        raise ValueError("matdiff source cannot contain a NUL character")
    err = _lib.MdError()
    name = os.fsencode(filename) if filename is not None else None
    handle = _LIB.md_compile(source.encode("utf-8"), name, ctypes.byref(err))
    if not handle:
        raise CompileError(_text(err.diag) or _text(err.message), err.line, err.col,
                           _text(err.message))
    return Function(handle, filename)


def load(path):
    """Compile the .expr file at PATH (diagnostics name PATH)."""
    with open(path, encoding="utf-8") as f:
        return compile(f.read(), os.fspath(path))


class Sym(str):
    """A symbolic size in a declared shape: its name (a str), with .index,
    its position in Function.dims."""

    def __new__(cls, name, index):
        s = super().__new__(cls, name)
        s.index = index
        return s


class Input(str):
    """An input's name (a str), with .shape, its declared (rows, cols), a
    number or a size name each, .wrt, whether it has a gradient, and
    .symmetric and .posdef, whether it is declared symmetric(n) or
    posdef(n) (a posdef input is symmetric too): every call then requires
    symmetric data."""

    def __new__(cls, name, shape, wrt, symmetric=False, posdef=False):
        s = super().__new__(cls, name)
        s.shape, s.wrt, s.symmetric, s.posdef = shape, wrt, symmetric, posdef
        return s

    def __repr__(self):
        extra = ", posdef=True" if self.posdef else ", symmetric=True" if self.symmetric else ""
        return "Input(%s, shape=%r, wrt=%r%s)" % (str.__repr__(self), self.shape, self.wrt, extra)


def _show(shape):
    """A shape as Python writes a tuple, without quotes: (n, k), (3,), ()."""
    return "(%s%s)" % (", ".join(str(d) for d in shape), "," if len(shape) == 1 else "")


def _fits(shape, r, c):
    """Does an array of SHAPE hold an r×c matrix? As a 2-D array, or in
    fewer dimensions when nothing is lost: (n,) for n×1 or 1×n, () for 1×1."""
    if len(shape) == 2:
        return shape == (r, c)
    if len(shape) == 1:
        return (r == 1 or c == 1) and shape[0] == r * c
    return len(shape) == 0 and r == c == 1


# The numeric entry points of the C API, by what they take beyond the sizes
# and the inputs: a seed of the output's shape, gradient buffers. A new one
# (issue #12's second-order calls) is a row here and a method that calls
# _run with its name.
_Entry = collections.namedtuple("_Entry", "cname seed grads")
_ENTRIES = {
    "eval": _Entry("md_eval", seed=False, grads=False),
    "grad": _Entry("md_grad", seed=False, grads=True),
    "vjp": _Entry("md_vjp", seed=True, grads=True),
}


class Function:
    """A compiled matdiff function. Make one with matdiff.compile or
    matdiff.load.

      f(X=..., W=..., b=...)              the value: a float, or an ndarray
      f.grad(X=..., ...)                  (value, {name: gradient})
      f.vjp(seed, X=..., ...)             (value, {name: seed'*J})
      f.jvp(dirs, X=..., ...)             J*v along dirs, {name: direction}
      f.hvp(dirs, X=..., ...)             {name: H*v block row} (a scalar output)
      f.hessian(X=...), f.jacobian(X=...) the whole matrix, wrt inputs stacked
      f.inputs, f.dims, f.wrt, f.output, f.output_shape
      f.formulas, f.c_source, f.numpy_source

    Arrays may also be given by position, in declaration order. Calls are
    thread-safe: see _call.
    """

    def __init__(self, handle, filename=None):
        self._handle = handle
        self._finalizer = weakref.finalize(self, _LIB.md_free, handle)
        self.filename = filename
        nd = _LIB.md_num_dims(handle)
        self.dims = tuple(_text(_LIB.md_dim_name(handle, j)) for j in range(nd))

        def size(dim, literal):
            """A size: the symbolic size DIM (md_input_dim's answer), or
            the number LITERAL (md_input_rows's, without sizes) if DIM < 0."""
            return Sym(self.dims[dim], dim) if dim >= 0 else literal

        inputs = []
        for i in range(_LIB.md_num_inputs(handle)):
            shape = (size(_LIB.md_input_dim(handle, i, 0), _LIB.md_input_rows(handle, i, None)),
                     size(_LIB.md_input_dim(handle, i, 1), _LIB.md_input_cols(handle, i, None)))
            inputs.append(Input(_text(_LIB.md_input_name(handle, i)), shape,
                                bool(_LIB.md_input_is_wrt(handle, i)),
                                bool(_LIB.md_input_is_symmetric(handle, i)),
                                bool(_LIB.md_input_is_posdef(handle, i))))
        self.inputs = tuple(inputs)
        self.wrt = tuple(x for x in self.inputs if x.wrt)
        self.output = _text(_LIB.md_output_name(handle))
        self.output_shape = (size(_LIB.md_output_dim(handle, 0), _LIB.md_output_rows(handle, None)),
                             size(_LIB.md_output_dim(handle, 1), _LIB.md_output_cols(handle, None)))
        self.c_source = _text(_LIB.md_c_source(handle))
        self._index = {name: i for i, name in enumerate(self.inputs)}
        self._formulas = None

    def __repr__(self):
        args = ", ".join("%s: %s" % (x, _show(x.shape)) for x in self.inputs)
        return "<matdiff.Function %s(%s) -> %s>" % (self.output, args, _show(self.output_shape))

    @property
    def formulas(self):
        """{input: its derivative as matdiff prints it}, for each wrt input."""
        if self._formulas is None:
            self._formulas = {str(x): _text(_LIB.md_grad_formula(self._handle, i))
                              for i, x in enumerate(self.inputs) if x.wrt}
        return dict(self._formulas)

    @property
    def numpy_source(self):
        """The function as a Python module that needs only NumPy, as
        `matdiff compile --lang numpy` writes it: f(inputs) the value,
        f_grad(inputs) (value, {input: gradient}), and for an output that is
        not a scalar f_vjp(G, inputs); the second order, f_jvp(inputs,
        directions), and f_hvp(inputs, directions) and f_hessian(inputs) or
        f_jacobian(inputs). Made on first use."""
        err = _lib.MdError()
        s = _LIB.md_numpy_source(self._handle, ctypes.byref(err))
        if not s:
            raise MemoryError(_text(err.message))
        return _text(s)

    # ---- calls ---------------------------------------------------------

    def __call__(self, *args, **arrays):
        """The value: a float for a scalar output, else an ndarray (rows, cols)."""
        return self._run("eval", args, arrays)[0]

    def grad(self, *args, grads=None, **arrays):
        """(value, {input: gradient}) for every wrt input. For an output that
        is not a scalar, the gradient of the sum of its elements.

        GRADS, {input: ndarray}, gives buffers the gradients are ADDED into
        (float64, C-contiguous, of the input's shape); they are returned in
        the dict. An input named `grads` must be given by position."""
        return self._run("grad", args, arrays, grads=grads)

    def vjp(self, seed, /, *args, grads=None, **arrays):
        """(value, {input: seed'*J}): the vector-Jacobian product with SEED,
        of the output's shape (a number for a scalar output, which scales
        the gradient). GRADS as for grad."""
        return self._run("vjp", args, arrays, seed=seed, grads=grads)

    # ---- second order (matdiff.h's md_jvp ...) ---------------------------

    def jvp(self, dirs, /, *args, **arrays):
        """The output's directional derivative along DIRS, {input: direction
        of its shape} (wrt inputs not named move nothing): a float for a
        scalar output, else an ndarray (rows, cols)."""
        values, dims, call = self._second_args(args, arrays, dirs)
        r, c = self._resolve(self.output_shape, dims)
        out = np.zeros((r, c))
        self._call("md_jvp", *call, out.ctypes.data)
        return float(out[0, 0]) if self._scalar() else out

    def hvp(self, dirs, /, *args, **arrays):
        """{input: H*v block row}: for a scalar output, each wrt input's
        gradient's directional derivative along DIRS (as for jvp), each of
        the shape of the array given for that input."""
        values, dims, call = self._second_args(args, arrays, dirs)
        hv = {str(x): np.zeros(v.shape) for x, v in zip(self.inputs, values) if x.wrt}  # inputs first
        bufs = [hv[x].ctypes.data if x in hv else None for x in self.inputs]
        self._call("md_hvp", *call, (ctypes.c_void_p * len(bufs))(*bufs))
        return hv

    def hessian(self, *args, **arrays):
        """The Hessian of a scalar output over the wrt inputs stacked in
        declaration order, each flattened row-major (matdiff's vec layout):
        an (N, N) ndarray."""
        return self._whole("md_hessian", args, arrays)

    def jacobian(self, *args, **arrays):
        """d vec(output)/d(wrt inputs stacked, as for hessian), for an output
        that is not a scalar: a (rows*cols, N) ndarray."""
        return self._whole("md_jacobian", args, arrays)

    def _scalar(self):
        return self.output_shape == (1, 1)

    def _second_args(self, args, arrays, dirs=None):
        """(values, dims, [dims, inputs, directions]) for a second-order call;
        the directions array only when DIRS is not None. VALUES, the inputs
        then the directions as converted, must outlive the call."""
        values, dims = self._bind(self._collect(args, arrays))
        dims_c = (ctypes.c_long * max(len(dims), 1))(*dims)
        inputs_c = (ctypes.c_void_p * len(values))(*[v.ctypes.data for v in values])
        call = [dims_c, inputs_c]
        if dirs is not None:
            dirs = dict(dirs)
            for name in dirs:
                if name not in self._index or not self.inputs[self._index[name]].wrt:
                    raise TypeError("dirs: %r is not an input with a gradient; those are %s"
                                    % (name, ", ".join(self.wrt) or "none"))
            kept = []
            for x, v in zip(self.inputs, values):
                d = dirs.get(x)
                if d is None:
                    kept.append(None)
                    continue
                d = self._array(d, "direction %r" % str(x))
                r, c = self._resolve(x.shape, dims)
                if not _fits(d.shape, r, c):
                    raise ShapeError("the direction of %r must have its shape %s = (%d, %d), not %s"
                                     % (str(x), _show(x.shape), r, c, _show(d.shape)))
                kept.append(d)
            # The arrays stay alive as long as VALUES does: the caller holds both.
            values = values + [d for d in kept if d is not None]
            call.append((ctypes.c_void_p * len(kept))(*[d.ctypes.data if d is not None else None
                                                         for d in kept]))
        return values, dims, call

    def _whole(self, cname, args, arrays):
        values, dims, call = self._second_args(args, arrays)
        n = _LIB.md_wrt_size(self._handle, call[0])
        r, c = self._resolve(self.output_shape, dims)
        out = np.zeros((n if cname == "md_hessian" else r * c, n))
        self._call(cname, *call, out.ctypes.data)
        return out

    def _call(self, cname, *args):
        """The one call into C. Calls of an md_function are reentrant (each
        borrows a workspace of its own), and ctypes releases the GIL during
        the call, so calls from several Python threads, to one function or
        to several, run in parallel."""
        err = _lib.MdError()
        rc = getattr(_LIB, cname)(self._handle, *args, ctypes.byref(err))
        if rc != 0:
            raise EvalError(_text(err.message))

    def _run(self, kind, args, arrays, seed=None, grads=None, want=None):
        """Check and convert, call the entry point KIND, and return
        (value, {input: gradient}) (only the value for an entry without
        gradients). WANT, input indices, restricts the gradients computed
        (for the PyTorch wrapper); the others get NULL and cost nothing."""
        entry = _ENTRIES[kind]
        given = self._collect(args, arrays)
        values, dims = self._bind(given)
        dims_c = (ctypes.c_long * max(len(dims), 1))(*dims)
        inputs_c = (ctypes.c_void_p * len(values))(*[v.ctypes.data for v in values])
        r, c = self._resolve(self.output_shape, dims)
        out = np.empty((r, c))
        call = [dims_c, inputs_c]
        if entry.seed:
            seed = self._array(seed, "seed")
            if not _fits(seed.shape, r, c):
                raise ShapeError("the seed must have the output %s's shape %s = (%d, %d), not %s"
                                 % (self.output, _show(self.output_shape), r, c,
                                    _show(seed.shape)))
            call.append(seed.ctypes.data)
        call.append(out.ctypes.data)
        result = {}
        if entry.grads:
            result = self._gradients(given, values, dims, grads, want)
            bufs = [result[x].ctypes.data if x in result else None for x in self.inputs]
            call.append((ctypes.c_void_p * len(bufs))(*bufs))
        self._call(entry.cname, *call)
        y = float(out[0, 0]) if r == c == 1 else out
        return (y, result) if entry.grads else (y,)

    # ---- arguments -----------------------------------------------------

    def _collect(self, args, arrays):
        """The arguments in declaration order, as Python's calls check them."""
        if len(args) > len(self.inputs):
            raise TypeError("%s takes %d inputs, %d given" % (self.output, len(self.inputs),
                                                             len(args)))
        given = list(args) + [None] * (len(self.inputs) - len(args))
        for name, a in arrays.items():
            i = self._index.get(name)
            if i is None:
                raise TypeError("%s has no input %r; its inputs are %s"
                                % (self.output, name, ", ".join(self.inputs)))
            if i < len(args):
                raise TypeError("input %r given twice, by position and by name" % name)
            given[i] = a
        missing = [x for x, a in zip(self.inputs, given) if a is None]
        if missing:
            raise TypeError("missing input%s: %s" % ("s" if len(missing) > 1 else "",
                                                      ", ".join(missing)))
        return given

    @staticmethod
    def _array(a, what):
        """A float64 C-contiguous view or copy of A: converted, never refused,
        unless it is not real numbers."""
        arr = np.asarray(a)
        if arr.dtype.kind not in "biuf":
            raise TypeError("%s: expected real numbers, not an array of %s" % (what, arr.dtype))
        return np.asarray(arr, dtype=np.float64, order="C")

    def _bind(self, given):
        """Convert the arrays and bind every symbolic size from their shapes.
        Returns (arrays, sizes in the order of self.dims)."""
        dims, origin = [None] * len(self.dims), [None] * len(self.dims)
        values = []
        for x, a in zip(self.inputs, given):
            v = self._array(a, "input %r" % str(x))
            values.append(v)
            rows, cols = x.shape
            if v.ndim == 2:
                shape = v.shape
            elif v.ndim == 1 and cols == 1:
                shape = (v.shape[0], 1)
            elif v.ndim == 1 and rows == 1:
                shape = (1, v.shape[0])
            elif v.ndim == 0:
                shape = (1, 1)
            else:
                raise ShapeError("input %r is declared %s, given an array of shape %s%s"
                                 % (str(x), _show(x.shape), _show(v.shape),
                                    "" if v.ndim > 2 else ": a 1-D array fits only a vector "
                                    "(n, 1) or a row (1, n)"))
            for want, got in zip(x.shape, shape):
                why = None
                if not isinstance(want, Sym):
                    why = None if got == want else ""
                elif dims[want.index] is None:
                    if got < 1:
                        why = ": sizes must be positive"
                    dims[want.index], origin[want.index] = got, x
                elif dims[want.index] != got:
                    why = ": %s = %d from input %r" % (want, dims[want.index],
                                                       str(origin[want.index]))
                if why is not None:
                    raise ShapeError("input %r is declared %s, given shape %s%s"
                                     % (str(x), _show(x.shape), _show(v.shape), why))
        return values, dims

    @staticmethod
    def _resolve(shape, dims):
        return tuple(dims[d.index] if isinstance(d, Sym) else d for d in shape)

    def _gradients(self, given, values, dims, grads, want):
        """The gradient buffers: the caller's (added into), else zeros of the
        shape of the array given for that input."""
        grads = dict(grads or {})
        for name in grads:
            if name not in self._index or not self.inputs[self._index[name]].wrt:
                raise TypeError("grads: %r is not an input with a gradient; those are %s"
                                % (name, ", ".join(self.wrt) or "none"))
        result = {}
        for i, (x, v) in enumerate(zip(self.inputs, values)):
            if not x.wrt or (want is not None and i not in want):
                continue
            buf = grads.get(x)
            if buf is None:
                result[str(x)] = np.zeros(v.shape)
                continue
            r, c = self._resolve(x.shape, dims)
            if not isinstance(buf, np.ndarray) or buf.dtype != np.float64 \
                    or not buf.flags.c_contiguous or not buf.flags.writeable:
                raise TypeError("grads[%r]: the gradient is added in place, so it must be a "
                                "writeable, C-contiguous float64 ndarray" % str(x))
            if not _fits(buf.shape, r, c):
                raise ShapeError("grads[%r] must have the shape of input %r, %s = (%d, %d), "
                                 "not %s" % (str(x), str(x), _show(x.shape), r, c,
                                             _show(buf.shape)))
            result[str(x)] = buf
        return result
