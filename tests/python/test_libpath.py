"""test_libpath.py - where the package finds libmatdiff.so: the install,
then a source tree's build/pic/, then MATDIFF_LIB, then the loader's path;
matdiff.__libsource__ and __libpath__ say which. Each case imports a copy of
the package in a fresh interpreter."""
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PIC = os.path.join(ROOT, "build", "pic")
REPORT = "import matdiff; print(matdiff.__libsource__, matdiff.__libpath__)"


def run(pkg_parent, env_extra, code=REPORT):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": pkg_parent, **env_extra}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=pkg_parent,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def outside(tmp_path):
    """A copy of the package outside any source tree: its parent directory."""
    shutil.copytree(os.path.join(ROOT, "python", "matdiff"), tmp_path / "matdiff")
    return str(tmp_path)


def loader_has_matdiff():
    out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    return "libmatdiff.so.0" in out


def test_matdiff_lib(outside):
    lib = os.path.join(PIC, "libmatdiff.so")
    p = run(outside, {"MATDIFF_LIB": lib})
    assert p.stdout.split() == ["MATDIFF_LIB", lib], p.stderr


def test_install_comes_first(outside):
    rel = os.path.relpath(PIC, os.path.join(outside, "matdiff"))
    with open(os.path.join(outside, "matdiff", "_install.py"), "w") as f:
        f.write('LIBDIR = "%s"\n' % rel)
    p = run(outside, {"MATDIFF_LIB": "/nonexistent/libmatdiff.so"})
    assert p.stdout.split() == ["install", os.path.join(PIC, "libmatdiff.so.0")], p.stderr


def test_source_tree_before_matdiff_lib():
    p = run(os.path.join(ROOT, "python"), {"MATDIFF_LIB": "/nonexistent/libmatdiff.so"})
    assert p.stdout.split() == ["build", os.path.join(PIC, "libmatdiff.so")], p.stderr


def test_nothing_found_says_where_it_looked(outside):
    if loader_has_matdiff():
        pytest.skip("libmatdiff.so.0 is installed on the loader's path")
    p = run(outside, {"MATDIFF_LIB": "/nonexistent/libmatdiff.so"})
    assert p.returncode == 1
    assert "ImportError: matdiff: cannot load libmatdiff.so 0.1.0; tried, in order:\n" \
           "  MATDIFF_LIB: /nonexistent/libmatdiff.so: no such file\n" \
           "  loader: libmatdiff.so.0: " in p.stderr


def test_a_library_is_used_only_at_the_package_version(outside):
    """md_version() is checked: a package of another version, or a library
    without md_version (here libmatdiff_rt.so), passes the library over,
    and the ImportError says why."""
    lib = os.path.join(PIC, "libmatdiff.so")
    p = run(outside, {"MATDIFF_LIB": lib},
            "import matdiff; print(matdiff.__libversion__, matdiff.__version__)")
    assert p.stdout.split() == ["0.1.0", "0.1.0"], p.stderr
    init = os.path.join(outside, "matdiff", "__init__.py")
    with open(init) as f:
        text = f.read()
    with open(init, "w") as f:
        f.write(text.replace('__version__ = "0.1.0"', '__version__ = "9.9.9"'))
    p = run(outside, {"MATDIFF_LIB": lib})
    assert p.returncode == 1
    assert "  MATDIFF_LIB: %s: it is version 0.1.0, this package 9.9.9\n" % lib in p.stderr, \
        p.stderr
    rt = os.path.join(PIC, "libmatdiff_rt.so")
    p = run(outside, {"MATDIFF_LIB": rt})
    assert p.returncode == 1
    assert "  MATDIFF_LIB: %s: it has no md_version()\n" % rt in p.stderr, p.stderr
