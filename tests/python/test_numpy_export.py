"""test_numpy_export.py - the NumPy module `matdiff compile --lang numpy`
writes (and Function.numpy_source returns), imported and called, against
the JIT (the package's calls) at 1e-12: every example, random programs of
tests/gen.c, and the module's conventions (shapes given 1-D, errors); the
second order (f_jvp, f_hvp, f_hessian, f_jacobian) the same way. Each op
of the table is exported and run by tests/test_ops.c."""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import matdiff
from conftest import ROOT, SEED

MATDIFF = os.path.join(ROOT, "build", "matdiff")
TEST_RANDOM = os.path.join(ROOT, "build", "tests", "test_random")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.expr")))
RANDOM_PROGRAMS = 150


def rel_err(got, want):
    """max|got - want| / max(1, max|want|), as md_rel_err; shapes must agree."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    if got.size == 0:
        return 0.0
    return float(np.abs(got - want).max() / max(1.0, np.abs(want).max()))


def module(text, name, tmp_path):
    """TEXT written as NAME.py in TMP_PATH and imported."""
    path = tmp_path / (name + ".py")
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, str(path))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def cli_module(path, tmp_path, *flags):
    """`matdiff compile --lang numpy PATH -o` a file, imported: functions named
    after PATH's base name."""
    name = re.sub(r"\W", "_", os.path.basename(path).split(".")[0])
    out = tmp_path / (name + ".py")
    subprocess.run([MATDIFF, "compile", "--lang", "numpy", *flags, path, "-o", str(out)],
                   check=True)
    return module(out.read_text(), name, tmp_path), name


def draw(f, rng, lo, hi, sizes=None, boost=True):
    """Inputs of F's declared shapes, uniform in [LO, HI), at SIZES (random
    from 2 to 5 where not given); with BOOST a square input gets its size
    added to the diagonal, well conditioned for inv, det and logdet. A
    symmetric or posdef input is made symmetric, (A + A')/2 (with the
    boost, diagonally dominant: positive definite)."""
    sizes = dict(sizes or {})
    arrays = []
    for x in f.inputs:
        shape = tuple(sizes.setdefault(d, int(rng.integers(2, 6))) if isinstance(d, str) else d
                      for d in x.shape)
        a = rng.uniform(lo, hi, shape)
        if boost and shape[0] == shape[1] and shape[0] > 1:
            a += shape[0] * np.eye(shape[0])
        if x.symmetric:
            a = (a + a.T) / 2
        arrays.append(a)
    return arrays, sizes


def compare(f, m, name, arrays, rng, tol=1e-12, what=""):
    """m.NAME and m.NAME_grad (m.NAME_vjp at a random seed too, for a matrix
    output) against f, f.grad and f.vjp at ARRAYS."""
    value = getattr(m, name)(*arrays)
    want = f(*arrays)
    # A float for a declared 1x1 output; the package's is a float for any
    # output that is 1x1 at the call.
    matrix_out = f.output_shape != (1, 1)
    assert isinstance(value, np.ndarray if matrix_out else float), (what, type(value))
    want = np.reshape(want, np.shape(value))
    assert rel_err(value, want) <= tol, (what, "value", rel_err(value, want))
    y, g = getattr(m, name + "_grad")(*arrays)
    wy, wg = f.grad(*arrays)
    wy = np.reshape(wy, np.shape(y))
    assert rel_err(y, wy) <= tol, (what, "value of grad", rel_err(y, wy))
    assert list(g) == list(wg), (what, list(g), list(wg))
    for k in wg:
        assert rel_err(g[k], wg[k]) <= tol, (what, "d/d" + k, rel_err(g[k], wg[k]))
    if matrix_out:
        seed = rng.uniform(-1, 1, np.shape(value))
        y, g = getattr(m, name + "_vjp")(seed, *arrays)
        wy, wg = f.vjp(seed, *arrays)
        wy = np.reshape(wy, np.shape(y))
        assert rel_err(y, wy) <= tol, (what, "value of vjp", rel_err(y, wy))
        for k in wg:
            assert rel_err(g[k], wg[k]) <= tol, (what, "vjp d/d" + k, rel_err(g[k], wg[k]))


def directions(f, arrays, rng):
    """{input: direction} for F's wrt inputs, uniform in [-1, 1], of the
    arrays' shapes; symmetric for a symmetric input."""
    dirs = {}
    for x, a in zip(f.inputs, arrays):
        if x.wrt:
            d = rng.uniform(-1, 1, np.shape(a))
            dirs[str(x)] = (d + d.T) / 2 if x.symmetric else d
    return dirs


def compare_second(f, m, name, arrays, rng, tol=1e-12, what=""):
    """m.NAME_jvp, and m.NAME_hvp and m.NAME_hessian (a scalar output) or
    m.NAME_jacobian, against f.jvp, f.hvp, f.hessian and f.jacobian at ARRAYS
    and random directions. Returns the largest relative difference."""
    dirs = directions(f, arrays, rng)
    along = [dirs[str(x)] for x in f.wrt]
    scalar = f.output_shape == (1, 1)
    worst = 0.0

    def check(tag, got, want):
        nonlocal worst
        e = rel_err(got, want)
        assert e <= tol, (what, tag, e)
        worst = max(worst, e)

    tangent = getattr(m, name + "_jvp")(*arrays, *along)
    assert isinstance(tangent, float if scalar else np.ndarray), (what, type(tangent))
    check("jvp", tangent, np.reshape(f.jvp(dirs, *arrays), np.shape(tangent)))
    # A scalar output has f_hvp and f_hessian, any other f_jacobian, as the C.
    assert hasattr(m, name + "_hvp") == hasattr(m, name + "_hessian") == scalar, what
    assert hasattr(m, name + "_jacobian") != scalar, what
    if scalar:
        hv, want = getattr(m, name + "_hvp")(*arrays, *along), f.hvp(dirs, *arrays)
        assert list(hv) == list(want), (what, list(hv), list(want))
        for k in want:
            check("hvp " + k, hv[k], want[k])
        check("hessian", getattr(m, name + "_hessian")(*arrays), f.hessian(*arrays))
    else:
        check("jacobian", getattr(m, name + "_jacobian")(*arrays), f.jacobian(*arrays))
    return worst


def sizes_apart(f):
    """Each symbolic size of F a different number, from 3 on: no matrix is
    square unless it is declared so, and no vector has a length of 1."""
    return {d: 3 + i for i, d in enumerate(f.dims)}


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_examples_second_order(path, tmp_path):
    """Every example's second order, through `matdiff compile --lang numpy`
    and through numpy_source, at sizes that are all different."""
    f = matdiff.load(path)
    rng = np.random.default_rng(abs(hash(os.path.basename(path))) % 2**32)
    arrays, _ = draw(f, rng, 0.1, 0.9, sizes_apart(f))
    m, name = cli_module(path, tmp_path)
    compare_second(f, m, name, arrays, rng, what=path)
    compare_second(f, module(f.numpy_source, "from_package", tmp_path), "f", arrays, rng,
                   what=path)


# Programs whose second order takes each way the C has: a Hessian or a
# Jacobian from its matrix formula (one wrt variable, a scalar or a vector)
# or one HVP or JVP per unit direction (several variables, a matrix one, a
# symmetric one, whose unit directions are symmetric).
SECOND_ORDER = {
    "hessian_scalar": ("s : scalar\ny = exp(s)*s^2\n", True),
    "hessian_vector": ("A : matrix(n, m)\nx : vector(m)\nwrt x\ny = sum(exp(A*x)) + x'*x\n", True),
    "hessian_row": ("r : matrix(1, m)\nA : matrix(m, n)\nwrt r\ny = sum(tanh(r*A))\n", True),
    "hessian_matrix": ("A : matrix(n, m)\ny = sum(exp(A))*||A||_F^2\n", False),
    "hessian_symmetric": ("S : symmetric(n)\nx : vector(n)\ny = x'*S*S*x + sum(exp(S))\n", False),
    "jacobian_vector": ("A : matrix(n, m)\nx : vector(m)\nwrt x\nz = tanh(A*x)\n", True),
    "jacobian_row": ("r : matrix(1, m)\nA : matrix(m, n)\nwrt r\nz = exp(r*A)\n", True),
    "jacobian_matrix": ("X : matrix(n, m)\nW : matrix(m, k)\nb : vector(k)\n"
                        "Z = tanh(X*W + b')\n", False),
    "jacobian_symmetric": ("S : symmetric(n)\nx : vector(n)\nz = S*x + exp(x)\n", False),
    "jacobian_linear": ("A : matrix(n, m)\nx : vector(m)\nwrt x\nz = A*x\n", True),
    "hessian_linear": ("A : matrix(n, m)\nx : vector(m)\ny = sum(A*x)\n", False),
}


@pytest.mark.parametrize("case", sorted(SECOND_ORDER))
def test_second_order_ways(case, tmp_path):
    """Each way of computing a Hessian or a Jacobian, and the docstring says
    which it took."""
    src, formula = SECOND_ORDER[case]
    f = matdiff.compile(src)
    m = module(f.numpy_source, case, tmp_path)
    rng = np.random.default_rng(7)
    arrays, _ = draw(f, rng, 0.1, 0.9, sizes_apart(f))
    compare_second(f, m, "f", arrays, rng, what=case)
    whole = m.f_hessian if f.output_shape == (1, 1) else m.f_jacobian
    assert ("from its matrix formula" in whole.__doc__) == formula, whole.__doc__


def test_directions(tmp_path):
    """A direction left out (None) is zeros; one may be given 1-D, a scalar's
    as a number, and the HVPs come in the shapes the inputs were given; a
    direction of the wrong shape is a ValueError that names it."""
    f = matdiff.compile("A : matrix(n, m)\nx : vector(m)\ns : scalar\ny = s^2*sum(exp(A*x))\n")
    m = module(f.numpy_source, "directions", tmp_path)
    rng = np.random.default_rng(5)
    A, x, s = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, 2), 0.7
    dA, dx = rng.uniform(-1, 1, (3, 2)), rng.uniform(-1, 1, 2)
    assert m.f_jvp(A, x, s) == 0.0
    assert rel_err(m.f_jvp(A, x, s, dx=dx), f.jvp({"x": dx}, A, x, s)) <= 1e-12
    assert rel_err(m.f_jvp(A, x, s, dA, None, 0.5), f.jvp({"A": dA, "s": 0.5}, A, x, s)) <= 1e-12
    hv, want = m.f_hvp(A, x, s, ds=1.0), f.hvp({"s": 1.0}, A, x, s)
    assert hv["x"].shape == (2,) and hv["s"].shape == () and hv["A"].shape == (3, 2)
    for k in want:
        assert rel_err(hv[k], want[k]) <= 1e-12, k
    zero = m.f_hvp(A, x.reshape(2, 1), s)
    assert zero["x"].shape == (2, 1) and not any(np.any(v) for v in zero.values())
    with pytest.raises(ValueError, match="direction 'dx' is declared \\(m, 1\\), given shape \\(3,\\)"):
        m.f_jvp(A, x, s, dx=np.ones(3))


def test_first_only(tmp_path):
    """The second order is written by default, as for C; --first-only leaves
    it out of the module as out of the C."""
    seed = os.path.join(ROOT, "examples", "seed.expr")
    m, _ = cli_module(seed, tmp_path)
    assert all(hasattr(m, "seed_" + k) for k in ("jvp", "hvp", "hessian"))
    first, _ = cli_module(seed, tmp_path, "--first-only")
    assert callable(first.seed_grad)
    assert not any(hasattr(first, "seed_" + k) for k in ("jvp", "hvp", "hessian", "jacobian"))
    c = subprocess.run([MATDIFF, "compile", "--first-only", seed], capture_output=True,
                       text=True, check=True).stdout
    assert "seed_grad(" in c and "seed_jvp" not in c


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_examples(path, tmp_path):
    """Every example, through `matdiff compile --lang numpy` and through
    numpy_source, at inputs in [0.1, 0.9] (check's fallback, inside every
    example's domain)."""
    f = matdiff.load(path)
    rng = np.random.default_rng(abs(hash(os.path.basename(path))) % 2**32)
    arrays, _ = draw(f, rng, 0.1, 0.9)
    m, name = cli_module(path, tmp_path)
    compare(f, m, name, arrays, rng, what=path)
    compare(f, module(f.numpy_source, "from_package", tmp_path), "f", arrays, rng, what=path)


def random_programs(n):
    """N programs of tests/gen.c (seeds 1..N), as test_random shows them."""
    if not os.access(TEST_RANDOM, os.X_OK):
        pytest.skip("%s is not built (make check builds it)" % TEST_RANDOM)
    env = dict(os.environ, MD_RANDOM_SHOW="1", MD_RANDOM_N=str(n), MD_RANDOM_SEED="1",
               MD_RANDOM_JOBS="1", MD_RANDOM_AOT="0", MD_RANDOM_SAVE="0",
               MD_RANDOM_SKIP="print,aot,ref,accum,second,hessian")
    r = subprocess.run([TEST_RANDOM, "--filter", "random/expressions"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    parts = re.split(r"^---- seed (\d+)\n", r.stderr, flags=re.M)
    progs = [(int(parts[i]), parts[i + 1]) for i in range(1, len(parts), 2)]
    # The last program runs into the summary test_random prints after it.
    return [(s, re.split(r"^random: |^\[", p, flags=re.M)[0]) for s, p in progs]


def test_random_programs(tmp_path):
    """Random programs with every operator and function, hostile names (C's,
    Python's) among them, at sizes from 1 to 5 and inputs in [-1, 1], where
    the generator keeps every function in its domain."""
    progs = random_programs(RANDOM_PROGRAMS)
    assert len(progs) == RANDOM_PROGRAMS
    for seed, src in progs:
        f = matdiff.compile(src, "random%d.expr" % seed)
        rng = np.random.default_rng(seed)
        sizes = {d: int(rng.integers(1, 6)) for d in f.dims}
        arrays, _ = draw(f, rng, -1, 1, sizes, boost=False)
        m = module(f.numpy_source, "random%d" % seed, tmp_path)
        try:
            compare(f, m, "f", arrays, rng, what="seed %d" % seed)
            compare_second(f, m, "f", arrays, rng, what="seed %d" % seed)
        except (AssertionError, Exception) as e:
            raise AssertionError("random program %d:\n%s\n%s\n%s" % (seed, src, f.numpy_source, e))


def test_shapes_as_given(tmp_path):
    """Vectors may be given 1-D and scalars as numbers; each gradient has its
    input's shape as given, and the sizes are bound from the arrays."""
    src = "A : matrix(n, m)\nx : vector(m)\nr : matrix(1, n)\ns : scalar\ny = r*A*x*s + s^2\n"
    f = matdiff.compile(src)
    m = module(f.numpy_source, "shapes", tmp_path)
    rng = np.random.default_rng(0)
    A, x, r = rng.standard_normal((3, 2)), rng.standard_normal(2), rng.standard_normal(3)
    y, g = m.f_grad(A, x, r, 1.5)
    wy, wg = f.grad(A=A, x=x, r=r, s=1.5)
    assert isinstance(y, float) and rel_err(y, wy) <= 1e-12
    assert g["x"].shape == (2,) and g["r"].shape == (3,) and g["s"].shape == ()
    for k in wg:
        assert rel_err(g[k], wg[k]) <= 1e-12
    y2, g2 = m.f_grad(A, x.reshape(2, 1), r.reshape(1, 3), np.array([[1.5]]))
    assert g2["x"].shape == (2, 1) and g2["r"].shape == (1, 3) and g2["s"].shape == (1, 1)
    assert y2 == y


def test_gradients_are_copies(tmp_path):
    """A gradient that is an input (d/dX sum(X.*W) = W) is a fresh array."""
    f = matdiff.compile("X : matrix(n, m)\nW : matrix(n, m)\ny = sum(X.*W)\n")
    m = module(f.numpy_source, "copies", tmp_path)
    X, W = np.ones((2, 3)), np.full((2, 3), 2.0)
    _, g = m.f_grad(X, W)
    g["X"][0, 0] = 7
    assert W[0, 0] == 2.0


def test_errors(tmp_path):
    """A shape mismatch is a ValueError naming the input; a singular matrix
    raises numpy.linalg.LinAlgError, as NumPy does."""
    m = module(matdiff.compile(SEED).numpy_source, "seed_errors", tmp_path)
    with pytest.raises(ValueError, match="input 'W' is declared \\(k, m\\), given shape \\(4, 2\\)"):
        m.f(np.ones((5, 3)), np.ones((4, 2)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="input 'X'"):
        m.f(np.ones((5, 3, 1)), np.ones((3, 2)), np.ones((5, 2)))
    inv = module(matdiff.compile("A : matrix(n, n)\ny = sum(inv(A))\n").numpy_source,
                 "singular", tmp_path)
    with pytest.raises(np.linalg.LinAlgError):
        inv.f(np.zeros((3, 3)))
    with pytest.raises(np.linalg.LinAlgError):
        inv.f_grad(np.ones((2, 2)))


def test_cli_lang(tmp_path):
    """--lang c is the default, spelled out; --lang takes c or numpy, and the
    C's options are not numpy's."""
    seed = os.path.join(ROOT, "examples", "seed.expr")
    run = lambda *a: subprocess.run([MATDIFF, "compile", *a], capture_output=True, text=True)
    assert run(seed).stdout == run("--lang", "c", seed).stdout == run("--lang=c", seed).stdout
    r = run("--lang", "fortran", seed)
    assert r.returncode == 1 and "--lang takes c or numpy, not 'fortran'" in r.stderr
    r = run("--lang", "numpy", "--float", seed)
    assert r.returncode == 1 and "--float is for C" in r.stderr
    py = run("--lang", "numpy", "--name", "loss", seed).stdout
    assert "def loss(X, W, b):" in py and "def loss_grad(X, W, b):" in py
    compile(py, "loss.py", "exec")


def test_names(tmp_path):
    """Python's keywords and the module's own names as inputs and
    intermediates, a temporary's t1 taken by the source, a function named
    after a builtin the helpers call, a file name with a quote and a
    backslash: the module imports and computes the same."""
    src = ("lambda : scalar\ndef : matrix(n, n)\nnp : vector(n)\nsizes : vector(n)\n"
           "given : scalar\nfloat : scalar\nf_grad : scalar\nX : vector(n)\ndX : vector(n)\n"
           "t1 = def*np\nNone = t1 + sizes\n"
           "y = lambda*sum(None.*X) + given*float*f_grad + sum(exp(dX))\n")
    path = tmp_path / 'we"ird\\N'
    path.mkdir()
    (path / "min.expr").write_text(src)
    m, name = cli_module(str(path / "min.expr"), tmp_path, "--name", "min")
    assert name == "min" and not hasattr(m, "min") and callable(m.min_) and callable(m.min_grad)
    f = matdiff.compile(src)
    rng = np.random.default_rng(3)
    arrays, _ = draw(f, rng, -1, 1)
    value, g = m.min_grad(*arrays)
    wv, wg = f.grad(*arrays)
    assert rel_err(value, wv) <= 1e-12 and rel_err(m.min_(*arrays), wv) <= 1e-12
    assert list(g) == list(wg) == ["lambda", "def", "np", "sizes", "given", "float", "f_grad",
                                   "X", "dX"]
    for k in wg:
        assert rel_err(g[k], wg[k]) <= 1e-12, k
    text = (tmp_path / "min.py").read_text()
    assert set(re.findall(r"^    t1 = .*$", text, re.M)) <= {"    t1 = def_ @ np_"}
    assert "lambda_ = _input(\"lambda\"" in text


def test_second_order_names(tmp_path):
    """The directions and the second order's locals among the program's
    names: a direction that is a keyword (def, del), one the source has (dX
    next to X takes dX_1), the Hessian's locals (at, e, k, hv, H), the
    tangent dy and an HVP hv_e as inputs, and an input named after a
    second-order function: the module imports and computes the JIT's."""
    src = ("ef : vector(n)\nel : scalar\ne : vector(n)\nk : scalar\nat : scalar\nhv : scalar\n"
           "H : vector(n)\nX : vector(n)\ndX : vector(n)\ndy : scalar\nf_jvp : scalar\n"
           "hv_e : scalar\n"
           "y = sum(exp(ef.*e))*el^2 + k*at*hv*sum(H.*X.*dX) + dy^3*f_jvp*hv_e\n")
    f = matdiff.compile(src)
    text = f.numpy_source
    m = module(text, "second_names", tmp_path)
    rng = np.random.default_rng(11)
    arrays, _ = draw(f, rng, -1, 1, {"n": 3})
    compare_second(f, m, "f", arrays, rng, what="names")
    assert ("def f_jvp(ef, el, e, k, at, hv, H, X, dX, dy, f_jvp_, hv_e, def_=None, del_=None,"
            in text)
    assert ", dX_1=None, ddX=None, ddy=None, df_jvp=None, dhv_e=None):" in text
    assert "    dy_ = " in text and "    hv_e_ = " in text
