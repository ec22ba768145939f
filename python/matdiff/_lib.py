"""_lib.py - finds libmatdiff.so, loads it with ctypes and declares the
public C API of compiler/matdiff.h, and nothing more.

Where the library comes from, the first found whose md_version() is this
package's version wins (matdiff.__libpath__ and matdiff.__libsource__ say
which; a library of another version is passed over, and named if none fits):
  1. "install": the library `make install` put next to this package, at the
     path it recorded in _install.py (relative to this directory, so that
     a DESTDIR staging tree works as well as the live one);
  2. "build": when this package is python/matdiff/ in a source tree, that
     tree's build/pic/libmatdiff.so (`make shared`);
  3. "MATDIFF_LIB": the file the environment variable names;
  4. "loader": libmatdiff.so.0 wherever the dynamic loader finds it (a live
     `make install` run ldconfig), for a package installed by pip.

ctypes is used, not cffi: it is in the standard library, so the package
needs nothing beyond NumPy; the API is a dozen functions over plain C types;
and a ctypes call on a CDLL releases the GIL while C runs.
"""
import ctypes
import os

from . import __version__

SONAME = "libmatdiff.so.0"
RT_SONAME = "libmatdiff_rt.so.0"


class MdError(ctypes.Structure):
    """struct md_error of matdiff.h."""
    _fields_ = [("line", ctypes.c_int), ("col", ctypes.c_int),
                ("message", ctypes.c_char * 512), ("diag", ctypes.c_char * 1024)]


_P = ctypes.c_void_p       # md_function *, and every array (passed as an address)
_ERR = ctypes.POINTER(MdError)
_L, _I, _S = ctypes.c_long, ctypes.c_int, ctypes.c_char_p

# The C API, as (result type, argument types). A new entry point of
# matdiff.h (the second-order calls of issue #12, for one) is one line here.
PROTOTYPES = {
    "md_version": (_S, []),
    "md_compile": (_P, [_S, _S, _ERR]),
    "md_free": (None, [_P]),
    "md_num_inputs": (_I, [_P]),
    "md_input_name": (_S, [_P, _I]),
    "md_num_dims": (_I, [_P]),
    "md_dim_name": (_S, [_P, _I]),
    "md_output_name": (_S, [_P]),
    "md_input_rows": (_L, [_P, _I, _P]),
    "md_input_cols": (_L, [_P, _I, _P]),
    "md_input_is_wrt": (_I, [_P, _I]),
    "md_input_is_symmetric": (_I, [_P, _I]),
    "md_input_is_posdef": (_I, [_P, _I]),
    "md_grad_formula": (_S, [_P, _I]),
    "md_c_source": (_S, [_P]),
    "md_numpy_source": (_S, [_P, _ERR]),
    "md_output_rows": (_L, [_P, _P]),
    "md_output_cols": (_L, [_P, _P]),
    # f, i, axis -> the symbolic size's index, or -1 for a number
    "md_input_dim": (_I, [_P, _I, _I]),
    "md_output_dim": (_I, [_P, _I]),
    # f, dims, inputs, out, err
    "md_eval": (_I, [_P, _P, _P, _P, _ERR]),
    # f, dims, inputs, out, grads, err
    "md_grad": (_I, [_P, _P, _P, _P, _P, _ERR]),
    # f, dims, inputs, seed, out, grads, err
    "md_vjp": (_I, [_P, _P, _P, _P, _P, _P, _ERR]),
    # f, dims, inputs, dirs, tangent, err
    "md_jvp": (_I, [_P, _P, _P, _P, _P, _ERR]),
    # f, dims, inputs, dirs, hv, err
    "md_hvp": (_I, [_P, _P, _P, _P, _P, _ERR]),
    # f, dims, inputs, H (or J), err
    "md_hessian": (_I, [_P, _P, _P, _P, _ERR]),
    "md_jacobian": (_I, [_P, _P, _P, _P, _ERR]),
    "md_wrt_size": (_L, [_P, _P]),
}


def _here():
    return os.path.dirname(os.path.abspath(__file__))


def candidates():
    """(source, path) pairs in the order they are tried."""
    here = _here()
    try:
        from . import _install
        yield "install", os.path.normpath(os.path.join(here, _install.LIBDIR, SONAME))
    except ImportError:
        pass
    root = os.path.dirname(os.path.dirname(here))
    if os.path.isfile(os.path.join(root, "compiler", "matdiff.h")):
        yield "build", os.path.join(root, "build", "pic", "libmatdiff.so")
    if os.environ.get("MATDIFF_LIB"):
        yield "MATDIFF_LIB", os.environ["MATDIFF_LIB"]
    yield "loader", SONAME


def _open(path):
    """Load PATH. libmatdiff.so needs libmatdiff_rt.so.0, which the loader
    would only look for on its own path: load the one beside PATH first, so
    that the loader finds it already there."""
    if os.sep in path:
        if not os.path.exists(path):
            raise OSError("no such file")
        rt = os.path.join(os.path.dirname(path), RT_SONAME)
        if os.path.exists(rt):
            ctypes.CDLL(rt, mode=ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(path)


def _loaded_path(lib, path):
    """The file a bare soname resolved to, from the process's mappings."""
    if os.sep in path:
        return os.path.abspath(path)
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                if len(fields) >= 6 and os.path.basename(fields[5]).startswith("libmatdiff.so"):
                    return fields[5]
    except OSError:
        pass
    return path


def _version(lib):
    """LIB's md_version(), or None if it has none (not libmatdiff, or one
    from before md_version)."""
    try:
        fn = lib.md_version
    except AttributeError:
        return None
    fn.restype, fn.argtypes = PROTOTYPES["md_version"]
    return fn().decode("utf-8", "replace")


def load():
    """(library, path, source, version); ImportError listing every place
    tried. A library is used only if it is this package's version: the
    prototypes below are that version's API."""
    tried = []
    for source, path in candidates():
        try:
            lib = _open(path)
        except OSError as e:
            tried.append("  %s: %s: %s" % (source, path, e))
            continue
        version = _version(lib)
        if version != __version__:
            tried.append("  %s: %s: %s" % (source, path, "it has no md_version()" if version is None
                                          else "it is version %s, this package %s"
                                          % (version, __version__)))
            continue
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        return lib, _loaded_path(lib, path), source, version
    raise ImportError("matdiff: cannot load libmatdiff.so %s; tried, in order:\n%s\n"
                      "Build it with `make shared` in the source tree, install it with "
                      "`make install`, or set MATDIFF_LIB to its path."
                      % (__version__, "\n".join(tried)))


LIB, LIBPATH, LIBSOURCE, LIBVERSION = load()
