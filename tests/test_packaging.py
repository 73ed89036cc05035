"""Packaging and install-time behaviour: the kernel cache decision of
``kernels/config.py`` (read-only installs), the stale-cache guard of
``xbarsim._kernel_cache``, the license files, the sdist manifest and the
version. Fast: no kernel is compiled (decorating a kernel compiles nothing)."""

import ast
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from xbarsim import _kernel_cache as kc
from xbarsim._kernel_cache import CacheLocation, KernelCacheWarning, drop_stale_cache, locate_cache
from xbarsim.kernels import config

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ("graph", "lines", "multigrid", "mvm", "nodal", "noise", "operator", "programming")


def _kernel_folder():
    return os.path.dirname(os.path.abspath(config.__file__))


# -- kernels/config.py: CACHE is decided once, and never raises ---------------


def test_no_cache_env_turns_caching_off_without_asking_numba():
    def refuse(folder):
        raise AssertionError("the locator must not be probed")

    for value in ("1", "true", "YES", " 1 "):
        assert config._cache_setting({"XBARSIM_NO_CACHE": value}, refuse) == (False, None, None)


def test_a_usable_cache_folder_keeps_caching_on_silently():
    where = CacheLocation(True, "/some/cache")
    assert config._cache_setting({}, lambda folder: where) == (True, "/some/cache", None)


def test_a_numba_cache_dir_numba_passes_over_is_warned_of(tmp_path):
    """Numba drops a NUMBA_CACHE_DIR it cannot create or write (here a file)
    without a word and caches elsewhere (found by review): said, naming both."""
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    where = CacheLocation(True, "/pkg/kernels/__pycache__")
    cache, folder, message = config._cache_setting({"NUMBA_CACHE_DIR": str(blocked)}, lambda folder: where)
    assert (cache, folder) == (True, "/pkg/kernels/__pycache__")
    assert f"NUMBA_CACHE_DIR={str(blocked)!r} is not a folder Numba can create or write" in message
    assert "caches the compiled kernels in /pkg/kernels/__pycache__" in message
    inside = CacheLocation(True, str(tmp_path / "nc" / "kernels_0123"))  # used: silent, relative or not
    assert config._cache_setting({"NUMBA_CACHE_DIR": str(tmp_path / "nc")}, lambda folder: inside)[2] is None
    assert config._cache_setting({"NUMBA_CACHE_DIR": ""}, lambda folder: where)[2] is None  # Numba: unset


def test_no_cache_locator_turns_caching_off_with_a_hint():
    """Read-only install, no writable NUMBA_CACHE_DIR or home: Numba has no
    locator and ``@njit(cache=True)`` would raise on import (the probe's D1)."""
    reason = "RuntimeError: cannot cache function 'f': no locator available for file 'x.py'"
    cache, folder, message = config._cache_setting({}, lambda folder: CacheLocation(False, None, reason))
    assert (cache, folder) == (False, None)
    assert "no locator available" in message
    assert "compiled again on every run" in message
    assert "NUMBA_CACHE_DIR" in message and "XBARSIM_NO_CACHE=1" in message
    assert "is set, and Numba" not in message
    # a NUMBA_CACHE_DIR that was passed over is named (found by review)
    message = config._cache_setting({"NUMBA_CACHE_DIR": "/ro/cache"},
                                    lambda folder: CacheLocation(False, None, reason))[2]
    assert "Set NUMBA_CACHE_DIR to a writable folder (NUMBA_CACHE_DIR='/ro/cache' is set, and Numba did not use it)" \
        in message


def test_a_failing_locator_probe_turns_caching_off_and_does_not_raise():
    def broken(folder):
        raise TypeError("numba changed")

    cache, folder, message = config._cache_setting({}, broken)
    assert (cache, folder) == (False, None)
    assert "TypeError: numba changed" in message


def test_the_kernel_options_follow_cache():
    for options in (config.JIT, config.PJIT, config.STRICT_JIT, config.STRICT_PJIT):
        assert options["cache"] is config.CACHE


# -- _kernel_cache.locate_cache: asks Numba as the kernels' decoration does ---


def test_locate_cache_finds_numba_s_folder_for_the_kernels():
    with warnings.catch_warnings():
        warnings.simplefilter("error", KernelCacheWarning)
        where = locate_cache(_kernel_folder())
    assert where.usable and isinstance(where.folder, str), where
    assert os.path.isdir(where.folder)


def test_locate_cache_reports_numba_s_error_when_no_locator_works(monkeypatch):
    import numba
    from numba.core import caching

    if hasattr(numba.config, "CACHE_LOCATOR_CLASSES"):  # Numba's own override
        monkeypatch.setattr(numba.config, "CACHE_LOCATOR_CLASSES", "IPythonCacheLocator")
    else:  # older Numba: its private default list
        monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    where = locate_cache(_kernel_folder())
    assert not where.usable and where.folder is None
    assert "no locator available" in where.reason


def test_locate_cache_warns_once_when_numba_hides_the_folder(monkeypatch):
    """The folder is read from private Numba attributes: if they go away the
    stale-cache guard is off, and that is said (once), not silent."""
    import numba

    monkeypatch.setattr(numba, "njit", lambda **options: (lambda func: object()))
    monkeypatch.setattr(kc, "_warned_unguarded", False)
    with pytest.warns(KernelCacheWarning, match="stale-cache guard") as caught:
        first = locate_cache(_kernel_folder())
        second = locate_cache(_kernel_folder())
    assert first == second == CacheLocation(True, None)
    assert len([w for w in caught if w.category is KernelCacheWarning]) == 1


def _run_config_probe(tmp_path, **env_changes):
    """Import every kernel module (decoration only, nothing compiles) in a
    fresh interpreter; return its CACHE settings and KernelCacheWarnings."""
    script = f"""
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import {", ".join("xbarsim.kernels." + k for k in KERNELS)}
    from xbarsim.kernels import config
print(json.dumps({{
    "cache": config.CACHE,
    "options": [o["cache"] for o in (config.JIT, config.PJIT, config.STRICT_JIT, config.STRICT_PJIT)],
    "folder": config._CACHE_FOLDER,
    "warnings": [str(w.message) for w in caught if w.category.__name__ == "KernelCacheWarning"],
}}))
"""
    env = dict(os.environ)
    env.pop("XBARSIM_NO_CACHE", None)
    env.pop("XDG_CACHE_HOME", None)
    env.pop("NUMBA_CACHE_LOCATOR_CLASSES", None)
    env.pop("NUMBA_DISABLE_JIT", None)
    env.update(env_changes)
    res = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_kernels_import_without_a_writable_cache_folder(tmp_path):
    """The probe's D1, end to end: NUMBA_CACHE_DIR cannot be created (it lies
    under a regular file), nor can the user cache folder (HOME under that
    file too), and the kernels' own __pycache__ is left out of Numba's
    locators. That last part stands for a read-only install: root ignores
    file modes, so a chmod could not stop the in-tree locator here. Numba
    then raises 'no locator available' at ``@njit(cache=True)``; the kernels
    must import, with caching off and one warning."""
    import numba

    if not hasattr(numba.config, "CACHE_LOCATOR_CLASSES"):
        pytest.skip("this Numba has no NUMBA_CACHE_LOCATOR_CLASSES to leave the in-tree locator out")
    afile = tmp_path / "afile"
    afile.write_text("")
    got = _run_config_probe(
        tmp_path,
        NUMBA_CACHE_DIR=str(afile / "sub"),
        HOME=str(afile / "home"),
        NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator,UserWideCacheLocator",
    )
    assert got["cache"] is False and got["options"] == [False] * 4 and got["folder"] is None
    assert len(got["warnings"]) == 1, got["warnings"]
    assert "NUMBA_CACHE_DIR" in got["warnings"][0] and "XBARSIM_NO_CACHE=1" in got["warnings"][0]


def test_a_writable_numba_cache_dir_is_used_and_stamped(tmp_path):
    """With a writable NUMBA_CACHE_DIR caching stays on, silently, and the
    stale-cache stamp lands in the folder Numba uses for the kernels."""
    got = _run_config_probe(tmp_path, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert got["cache"] is True and got["options"] == [True] * 4 and got["warnings"] == []
    folder = Path(got["folder"])
    assert folder.parent == tmp_path / "cache"
    stamp = folder / kc.STAMP
    assert stamp.read_text().strip() == kc._source_digest(_kernel_folder())


# -- _kernel_cache.drop_stale_cache: the stamp, and failures made visible -----


def test_drop_stale_cache_writes_the_stamp(tmp_path):
    src, cache = tmp_path / "src", tmp_path / "cache"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    (src / "notes.txt").write_text("not a source")
    drop_stale_cache(folder=str(cache), sources=str(src))  # creates the folder
    stamp = cache / "xbarsim-kernels.sha256"
    assert stamp.read_text().strip() == kc._source_digest(str(src))
    assert re.fullmatch(r"[0-9a-f]{64}\n", stamp.read_text())
    assert sorted(p.name for p in cache.iterdir()) == ["xbarsim-kernels.sha256"]  # no temp file left


def test_drop_stale_cache_stamps_the_package_kernels_by_default(tmp_path):
    drop_stale_cache(folder=str(tmp_path))
    digest = (tmp_path / kc.STAMP).read_text().strip()
    assert digest == kc._source_digest(_kernel_folder())


def test_drop_stale_cache_warns_once_on_an_unexpected_failure(tmp_path, monkeypatch):
    def broken(folder):
        raise ValueError("numba changed")

    monkeypatch.setattr(kc, "_source_digest", broken)
    monkeypatch.setattr(kc, "_warned_unguarded", False)
    with pytest.warns(KernelCacheWarning, match="stale-cache guard .* is off .*ValueError") as caught:
        drop_stale_cache(folder=str(tmp_path), sources=str(tmp_path))
        drop_stale_cache(folder=str(tmp_path), sources=str(tmp_path))
    assert len([w for w in caught if w.category is KernelCacheWarning]) == 1


_DIGEST_RUN = """
import pathlib, sys, warnings
from xbarsim._kernel_cache import KernelCacheWarning, _source_digest, stamp_with_digest
folder = sys.argv[1]
assert stamp_with_digest(folder, _source_digest(folder))
if len(sys.argv) > 2:  # a sibling source edited after the digest was taken, before the kernel's module is imported
    pathlib.Path(folder, "other.py").write_text(sys.argv[2])
sys.path.insert(0, folder)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import probe_kernel
assert probe_kernel.f(2.0) == 4.0
edited = any(w.category is KernelCacheWarning and "changed after this process" in str(w.message) for w in caught)
print(('hit' if probe_kernel.f.stats.cache_hits else 'miss') + (' edited' if edited else ''))
"""


def _probe_sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "probe_kernel.py").write_text("from numba import njit\n\n\n@njit(cache=True)\ndef f(x):\n"
                                         "    return 2.0 * x\n")
    (src / "other.py").write_text("A = 1\n")  # another kernel source: its edits change the digest alone
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))

    def run(*edit):
        proc = subprocess.run([sys.executable, "-c", _DIGEST_RUN, str(src), *edit], capture_output=True,
                              text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    return src, run


def test_cached_kernels_are_stamped_with_the_digest_of_the_sources_imported(tmp_path):
    """A process that imported the kernels before an edit, and compiled one
    after another process had dropped the cache, saved it with its old
    callee under the unchanged stamp of the kernel's own file; every later
    process loaded it (an MVM read half its current; found by review). An
    entry written under another digest of the package's sources is now a
    miss, then replaced."""
    src, run = _probe_sources(tmp_path)
    assert [run(), run()] == ["miss", "hit"]
    (src / "other.py").write_text("A = 2\n")
    assert [run(), run()] == ["miss", "hit"]
    (src / "other.py").write_text("A = 1\n")
    assert run() == "miss"


def test_a_kernel_module_imported_after_an_edit_is_not_cached_under_the_old_digest(tmp_path):
    """The digest was taken once, when the first kernel module was imported;
    one imported later, after a kernel source was edited, was compiled from
    the edited sources and saved under the first digest, and once the edit
    was undone every later process loaded it (found by review). Its stamp is
    now one no other process carries, and the process is warned."""
    src, run = _probe_sources(tmp_path)
    assert run("A = 2\n") == "miss edited"
    (src / "other.py").write_text("A = 1\n")  # the edit undone
    assert [run(), run()] == ["miss", "hit"]  # the mixed process's kernel was not taken


def test_numba_cache_locator_classes_is_said_to_turn_the_stamp_off(monkeypatch):
    """With NUMBA_CACHE_LOCATOR_CLASSES set, Numba builds its locators from
    the variable and never reads the stamped list: the guard was off
    without the promised warning (found by review)."""
    from numba.core import config as numba_config

    import xbarsim._kernel_cache as kc

    monkeypatch.setattr(numba_config, "CACHE_LOCATOR_CLASSES", "InTreeCacheLocator", raising=False)
    monkeypatch.setattr(kc, "_warned_unguarded", False)
    with pytest.warns(KernelCacheWarning, match="NUMBA_CACHE_LOCATOR_CLASSES is set"):
        assert kc.stamp_with_digest("/nonexistent", "x") is False


def test_drop_stale_cache_leaves_an_unwritable_folder_alone_silently(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.py").write_text("x = 1\n")
    afile = tmp_path / "afile"
    afile.write_text("")
    before = sorted(p.name for p in tmp_path.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the folder lies under a file: makedirs raises OSError (NotADirectoryError), best effort
        with pytest.raises(OSError):
            os.makedirs(afile / "cache", exist_ok=True)
        assert drop_stale_cache(folder=str(afile / "cache"), sources=str(src)) is None
    # left alone: the file is still the empty file, and nothing was written beside it (found by review)
    assert afile.is_file() and afile.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# -- what the sdist and wheel carry ------------------------------------------


def _pyproject():
    try:
        import tomllib  # Python >= 3.11
    except ImportError:  # 3.10: the dev extras bring tomli (a skip hid every pyproject test there)
        import tomli as tomllib
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def test_licenses_are_shipped_and_declared():
    ours = (ROOT / "LICENSE").read_text()
    upstream = (ROOT / "xbarsim" / "data" / "tio2" / "LICENSE").read_text()
    assert ours.startswith("MIT License\n") and "Copyright (c) 2026 the xbarsim developers" in ours
    assert upstream.startswith("MIT License\n") and "Copyright (c) 2023 Philippe Drolet" in upstream
    # the permission notice is the same MIT text in both
    assert ours.split("\n\n", 2)[2] == upstream.split("\n\n", 2)[2]
    assert "LICENSE" in (ROOT / "xbarsim" / "data" / "tio2" / "README.md").read_text()
    project = _pyproject()["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE", "xbarsim/data/tio2/LICENSE"]


def test_build_configuration():
    data = _pyproject()
    assert data["build-system"]["requires"] == ["setuptools>=77"]  # SPDX license, license-files
    tool = data["tool"]["setuptools"]
    packages = tool["packages"]
    assert "kernels" not in packages  # installed as xbarsim.kernels only
    assert tool["package-dir"] == {"xbarsim.kernels": "kernels"}
    for pkg in tool["package-data"]:
        assert pkg in packages, pkg
    # every folder of the package that ships files is a listed package
    for folder in (ROOT / "xbarsim").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__" and any(
            p.is_file() and p.suffix not in (".pyc",) for p in folder.iterdir()
        ):
            assert ".".join(folder.relative_to(ROOT).parts) in packages, folder


def test_the_built_wheel_ships_the_kernels_only_as_xbarsim_kernels(tmp_path):
    """The wheel itself, built from a copy of the sources (the tests above
    read pyproject.toml only; found by review): no top-level ``kernels``
    package (a name another PyPI project owns), every kernel module under
    ``xbarsim/kernels``, the measured data with its licence, no bytecode."""
    import importlib.metadata
    import shutil
    import zipfile

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(ROOT / name, src / name)
    for folder in ("xbarsim", "kernels"):  # caches and bytecode copied too: the build must leave them out
        shutil.copytree(ROOT / folder, src / folder)
    try:  # the installed setuptools when it is new enough (no index needed), else pip's isolated build
        isolated = int(importlib.metadata.version("setuptools").split(".")[0]) < 77
    except importlib.metadata.PackageNotFoundError:
        isolated = True
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)]
    if not isolated:
        cmd.insert(4, "--no-build-isolation")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("xbarsim-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not any(n.startswith("kernels/") for n in names)
    top = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    if top:
        assert zipfile.ZipFile(wheel).read(top[0]).decode().split() == ["xbarsim"]
    kernels = {p.name for p in (ROOT / "kernels").glob("*.py")}
    assert kernels and {n.split("/")[-1] for n in names if n.startswith("xbarsim/kernels/")} == kernels
    for data in ("LICENSE", "README.md", "neighbour_drift.csv", "programmed_8x8_maps.csv"):
        assert f"xbarsim/data/tio2/{data}" in names, data
    assert not any(n.endswith((".pyc", ".pyo", ".nbi", ".nbc")) or "__pycache__" in n for n in names)


def test_sdist_manifest_carries_the_test_helpers():
    lines = (ROOT / "MANIFEST.in").read_text().splitlines()
    for needed in ("graft tests", "graft examples", "graft bench", "graft docs", "include LICENSE README.md"):
        assert needed in lines, needed
    exclude = next(line for line in lines if line.startswith("global-exclude"))
    for pattern in ("*.py[cod]", "__pycache__", "*.nbi", "*.nbc"):
        assert pattern in exclude.split()
    for helper in ("naive.py", "problems.py", "threads.py"):
        assert (ROOT / "tests" / helper).is_file()


def test_the_circuit_definition_travels_with_the_repository_unchanged():
    """docs/CIRCUIT.md, which the docstrings and `xbarsim solve --help` cite,
    is the project's shared/CIRCUIT.md below a comment naming its source (it
    was cited as shared/CIRCUIT.md, a file outside the repository and the
    package: found by review)."""
    copy = (ROOT / "docs" / "CIRCUIT.md").read_text()
    assert copy.startswith("<!--") and "# The passive crossbar circuit" in copy
    shared = ROOT.parent / "shared" / "CIRCUIT.md"
    if not shared.is_file():
        pytest.skip("no shared/ beside the repository to compare with")
    assert copy.split("-->\n\n", 1)[1] == shared.read_text()


def test_import_stays_light_and_the_version_comes_from_the_metadata(tmp_path):
    script = (
        "import json, sys, xbarsim; "
        "print(json.dumps([xbarsim.__version__, "
        "[m for m in ('numba', 'torch', 'dask', 'matplotlib') if m in sys.modules]]))"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    version, heavy = json.loads(res.stdout)
    assert heavy == []
    expected = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert version in (expected, "0.1.0+unknown")  # installed metadata, or none
    # the training package loads torch, but no Numba until a kernel runs (a
    # module-level kernel import in the surrogate loaded it: found by review),
    # nor torch's compiler (a second), which only torch.compile needs
    res = subprocess.run([sys.executable, "-c", "import sys, xbarsim.train; "
                          "print([m for m in ('numba', 'torch._dynamo') if m in sys.modules])"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "[]", (res.stdout, res.stderr)


def _kernel_names(tree):
    """Names of the functions a kernel module decorates with ``@njit``."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                f = dec.func if isinstance(dec, ast.Call) else dec
                if isinstance(f, ast.Name) and f.id == "njit":
                    out.add(node.name)
    return out


def test_kernels_pass_no_bare_bool_literal_to_other_kernels():
    """Numba types a bare ``True`` / ``False`` argument as a literal and
    compiles the called kernel once more for it: `_read` and `_sense` were
    compiled three times each, adding ~10 s to the first transfer in a fresh
    cache (43 -> 32 s, 2026-12-01). Constant flags are written ``bool(True)``."""
    trees = {name: ast.parse((ROOT / "kernels" / f"{name}.py").read_text()) for name in KERNELS}
    kernels = set().union(*(_kernel_names(t) for t in trees.values()))
    offenders = []
    for name, tree in trees.items():
        for fn in ast.walk(tree):
            if not (isinstance(fn, ast.FunctionDef) and fn.name in _kernel_names(tree)):
                continue
            for call in ast.walk(fn):
                if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in kernels:
                    args = list(call.args) + [k.value for k in call.keywords]
                    if any(isinstance(a, ast.Constant) and isinstance(a.value, bool) for a in args):
                        offenders.append(f"kernels/{name}.py:{call.lineno} {call.func.id}")
    assert kernels and not offenders, offenders


def test_a_source_tree_finds_its_kernels_without_an_editable_install(tmp_path):
    """``python -m pytest`` in a checkout or unpacked sdist, with xbarsim
    installed normally, imports xbarsim from the tree, which has no
    xbarsim/kernels: every kernel import failed (found by review). The tree's
    kernels/ now answers for xbarsim.kernels, as the same modules; only in
    a source tree, with its pyproject.toml beside them: a ``kernels/`` folder
    that merely sits beside a copy of ``xbarsim/`` is not taken for the
    package's (taken, found by mutation testing)."""
    import shutil

    tree = tmp_path / "tree"
    for part in ("xbarsim", "kernels"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import importlib.util, json, sys\n"
        # no installed xbarsim to fall back on: drop the editable install's finder
        "sys.meta_path = [f for f in sys.meta_path if 'editable' not in str(getattr(f, '__module__', '')).lower()]\n"
        "import xbarsim, xbarsim.kernels.config as c, xbarsim.kernels.nodal as n\n"
        "print(json.dumps([xbarsim.__file__, c.__file__, n.set_ideal.py_func.__module__]))\n"
    )
    run = dict(cwd=tree, capture_output=True, text=True, timeout=120, env=dict(os.environ, XBARSIM_NO_CACHE="1"))
    res = subprocess.run([sys.executable, "-c", script], **run)
    assert res.returncode != 0 and "No module named 'xbarsim.kernels'" in res.stderr, res.stderr
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    res = subprocess.run([sys.executable, "-c", script], **run)
    assert res.returncode == 0, res.stderr
    pkg, config, module = json.loads(res.stdout)
    assert pkg == str(tree / "xbarsim" / "__init__.py") and config == str(tree / "kernels" / "config.py")
    assert module == "xbarsim.kernels.nodal"  # the kernels' own name, not a top-level "kernels"


def test_a_second_source_tree_runs_its_own_kernels_beside_an_editable_install(tmp_path):
    """A copy of the checkout run with this checkout's editable install
    imported xbarsim from the copy but xbarsim.kernels from here: edits to
    the copy's kernels were ignored without a word (found by review)."""
    import shutil

    tree = tmp_path / "tree"
    for part in ("xbarsim", "kernels"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    script = ("import json, xbarsim, xbarsim.kernels.config as c, xbarsim.kernels.nodal as n\n"
              "print(json.dumps([xbarsim.__file__, c.__file__, n.__file__]))\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=tree, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, XBARSIM_NO_CACHE="1"))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [str(tree / "xbarsim" / "__init__.py"), str(tree / "kernels" / "config.py"),
                                      str(tree / "kernels" / "nodal.py")]


SAFE_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
"""The fast-math flags a kernel may take: none that lets LLVM assume no NaN
or inf ("nnan", "ninf", or fastmath=True, which implies them), so that every
NaN check keeps working."""


def test_every_kernel_keeps_fast_math_to_the_safe_flags():
    # nothing pinned them: "nnan" added to a kernel's flags would have failed
    # no test, and its NaN checks could be compiled away (found by review)
    import importlib
    import pkgutil

    from numba.core.dispatcher import Dispatcher

    import xbarsim.kernels as kernels

    seen = 0
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"xbarsim.kernels.{info.name}")
        for name, obj in vars(module).items():
            if isinstance(obj, Dispatcher) and obj.__module__ == module.__name__:
                flags = obj.targetoptions.get("fastmath", False)
                assert flags is False or (isinstance(flags, (set, frozenset)) and set(flags) <= SAFE_FASTMATH), \
                    f"{module.__name__}.{name}: fastmath={flags!r}"
                seen += 1
    assert seen >= 60  # every kernel module was walked (68 kernels on 2026-12-02)


def test_an_editor_lock_file_among_the_kernels_is_skipped(tmp_path):
    """Emacs marks a modified buffer with a lock file ``.#name.py``, a
    dangling link: the sources' digest opened it and every kernel import
    raised FileNotFoundError (found by review). Unreadable names are
    skipped, so the digest is the sources' alone."""
    from xbarsim._kernel_cache import _source_digest

    (tmp_path / "mvm.py").write_text("x = 1\n")
    before = _source_digest(str(tmp_path))
    os.symlink(str(tmp_path / "nowhere"), str(tmp_path / ".#mvm.py"))
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "dangling.py"))
    assert _source_digest(str(tmp_path)) == before


def test_help_lists_the_fields_of_every_public_dataclass():
    """Fields are documented by a string after each, which Python drops:
    help(xs.TransferConfig) showed one sentence and no field, unit or
    default (found by review). `document_fields` appends them to the class
    docstring, read from the source when first asked for."""
    import dataclasses
    import inspect

    import xbarsim as xs
    import xbarsim.train as xt
    from xbarsim.mapping import LayerMapping, Tile
    from xbarsim.spice import SpiceResult
    from xbarsim.train.evaluate import MCResult
    from xbarsim.train.statistical import StatisticalModel

    doc = inspect.getdoc(xs.TransferConfig)
    assert "\nr_wl : float, default 1.0\n    Word-line segment resistance, ohms (0: ideal wire).\n" in doc
    assert "\ntolerance : float, default 0.01\n" in doc and "\nwrite_verify : WriteVerify, default WriteVerify()\n" in doc
    assert "\nscheme : BiasScheme, default 'V/2'\n" in doc
    # a partial as the call it makes (a lambda showed as "<lambda>()"; found by review)
    assert "\nresidual_history : np.ndarray, default np.zeros(0)\n" in inspect.getdoc(xs.Solution)
    from functools import partial

    import numpy as np

    from xbarsim._docfields import _factory_text

    assert _factory_text(partial(np.full, (2, 3), fill_value=1.5)) == "np.full((2, 3), fill_value=1.5)"
    assert _factory_text(partial(np.array, "ab")) == "np.array('ab')"
    assert _factory_text(partial(np.random.default_rng, 0)) == "np.random.default_rng(0)"
    assert _factory_text(xs.WriteVerify) == "WriteVerify()"
    # inherited fields too, and on instances
    assert "\ng : List[np.ndarray]\n    Per tile: final true conductances, S.\n" in inspect.getdoc(xs.Programmed)
    assert xs.TransferConfig().__doc__ == xs.TransferConfig.__doc__
    classes = (xs.TransferConfig, xs.WriteVerify, xs.DeviceParams, xs.Solution, xs.ProgramResult, xs.Programmed,
               xs.TransferBatch, xs.Crossbar, xs.Drive, Tile, LayerMapping, SpiceResult, xt.TrainConfig,
               xt.Surrogate, MCResult, StatisticalModel)
    for cls in classes:
        doc = inspect.getdoc(cls)
        assert doc.count("\nAttributes\n----------\n") == 1, cls
        listed = {line.split(" : ")[0] for line in doc.split("\nAttributes\n----------\n")[1].splitlines()
                  if line and not line.startswith(" ")}
        public = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}
        assert len(public & listed) >= max(1, len(public) // 2), (cls, public - listed)
    # the last field of a class body too (found by mutation testing: scanning all but the last two
    # statements dropped Drive's floating, MCResult's and TrainResult's last fields)
    assert "\nfloating : object, default None\n    Bool mask (L,) of open ends" in inspect.getdoc(xs.Drive)


def test_the_sources_digest_is_by_name_and_content(tmp_path):
    """`_source_digest` hashes each ``*.py`` by name and content: the same
    code under another file name is other sources (and only ``*.py`` count)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "mvm.py").write_text("x = 1\n")
    (b / "nodal.py").write_text("x = 1\n")
    assert kc._source_digest(str(a)) != kc._source_digest(str(b))
    before = kc._source_digest(str(a))
    (a / "notes.txt").write_text("not a source")
    assert kc._source_digest(str(a)) == before
    # names and contents do not run together: a.py = "" + b.py = "x" is not a.py = "b.pyx"
    assert _digest_of(tmp_path / "c", {"a.py": "", "b.py": "x"}) != _digest_of(tmp_path / "d", {"a.py": "b.pyx"})


def _digest_of(folder, files):
    """`_source_digest` of a new folder holding ``files`` (name -> text)."""
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return kc._source_digest(str(folder))


def test_an_editor_lock_file_that_is_a_regular_file_is_skipped_too(tmp_path):
    """Emacs's lock file ``.#name.py`` is a dangling link where links work,
    and a small regular file where they do not: either way it is no kernel
    source, and the digest is the sources' alone."""
    (tmp_path / "mvm.py").write_text("x = 1\n")
    before = kc._source_digest(str(tmp_path))
    (tmp_path / ".#mvm.py").write_text("user@host.1234:1700000000")
    assert kc._source_digest(str(tmp_path)) == before


def test_code_digest_tells_the_folder_a_source_is_in(tmp_path, monkeypatch):
    """`code_digest` hashes the package's sources "by folder, name and
    content": moving a module to another subpackage is other code."""
    def tree(root, sub):
        (root / sub).mkdir(parents=True)
        (root / "kernels").mkdir()
        (root / "a.py").write_text("A = 1\n")
        (root / sub / "b.py").write_text("B = 1\n")
        (root / "kernels" / "k.py").write_text("K = 1\n")
        return root

    digests = []
    try:
        for sub in ("train", "other"):
            root = tree(tmp_path / sub, sub)
            monkeypatch.setattr(kc, "__file__", str(root / "_kernel_cache.py"))
            monkeypatch.setattr(kc, "_kernel_folder", lambda root=root: str(root / "kernels"))
            kc.code_digest.cache_clear()
            digests.append(kc.code_digest())
    finally:
        kc.code_digest.cache_clear()  # the package's own digest again, once the patches are undone
    assert digests[0] != digests[1]


def test_drop_stale_cache_stamps_the_digest_its_caller_read_without_reading_again(tmp_path, monkeypatch):
    """``digest``, "when the caller has it already", is the one stamped:
    kernels/config.py reads the sources once for both the folder's stamp and
    the per-kernel stamp (`stamp_with_digest`), so the two cannot differ."""
    def no_second_read(folder):
        raise AssertionError("read the sources again")

    monkeypatch.setattr(kc, "_source_digest", no_second_read)
    monkeypatch.setattr(kc, "_warned_unguarded", False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failure would be a KernelCacheWarning
        kc.drop_stale_cache(folder=str(tmp_path / "cache"), sources=str(tmp_path), digest="d" * 64)
    assert (tmp_path / "cache" / kc.STAMP).read_text() == "d" * 64 + "\n"


def test_the_edited_since_import_warning_is_said_once_per_process(monkeypatch):
    """`_warn_edited_since_import`: "Say once per process" -- every kernel
    module imported after an edit calls it, one warning is enough."""
    monkeypatch.setattr(kc, "_warned_edited", False)
    with pytest.warns(kc.KernelCacheWarning, match="changed after this process imported") as caught:
        kc._warn_edited_since_import()
        kc._warn_edited_since_import()
    assert len([w for w in caught if w.category is kc.KernelCacheWarning]) == 1


def test_locate_cache_under_numba_disable_jit_is_usable_with_no_folder(monkeypatch):
    """NUMBA_DISABLE_JIT: ``njit`` returns the function itself and nothing is
    cached, yet ``@njit(cache=True)`` works: usable, no folder (caching is
    not "unusable", which would turn it off with the no-folder warning)."""
    import numba

    from xbarsim._kernel_cache import CacheLocation, locate_cache

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", kc.KernelCacheWarning)
        where = locate_cache(kc._kernel_folder())
    assert where == CacheLocation(True, None)


def test_a_second_kernel_folder_stamped_in_the_same_process_gets_its_own_digest(tmp_path):
    """`stamp_with_digest` is installed once per process; called again for
    another kernel folder (a second source tree), that folder's kernels are
    stamped with its digest too, not left with Numba's file stamp alone."""
    import importlib.util

    from numba.core import caching

    from xbarsim.kernels import config

    if not config.CACHE:
        pytest.skip("kernel caching is off in this process")
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    source = tmp_path / "probe_second.py"
    source.write_text("def f():\n    return 1\n")
    spec = importlib.util.spec_from_file_location("probe_second", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    digest = kc._source_digest(str(tmp_path))
    try:
        assert kc.stamp_with_digest(str(tmp_path), digest)
        locators = [cls.from_function(module.f, str(source)) for cls in impl._locator_classes]
        stamp = next(loc for loc in locators if loc is not None).get_source_stamp()
        assert stamp[1:] == ("xbarsim-kernels", digest)
    finally:
        impl._xbarsim_digests.pop(os.path.normcase(str(tmp_path)), None)


# Found by mutation testing of the kernel cache and the command line (each
# test below fails on a mutant that every other test passed).


def test_a_relative_numba_cache_dir_that_numba_uses_is_not_warned_of(tmp_path, monkeypatch):
    """Numba joins a relative NUMBA_CACHE_DIR as given, so its cache folder
    is relative too (``.numba/kernels_0123``): compared with both made
    absolute, it is inside the variable's folder and used, not "passed
    over" (a false warning on every import, and ``xbarsim cache --clear``
    refused)."""
    monkeypatch.chdir(tmp_path)
    for folder in (os.path.join(".numba", "kernels_0123"), str(tmp_path / ".numba" / "kernels_0123")):
        assert kc.ignored_cache_dir(folder, {"NUMBA_CACHE_DIR": ".numba"}) is None
        where = CacheLocation(True, folder)
        assert config._cache_setting({"NUMBA_CACHE_DIR": ".numba"}, lambda f: where)[2] is None
    assert kc.ignored_cache_dir(str(tmp_path / "elsewhere"), {"NUMBA_CACHE_DIR": ".numba"}) == ".numba"


def test_the_sources_digest_keeps_the_files_apart(tmp_path):
    """Each content is ended by its length: without it, ``a.py`` = "Xb" and
    ``c.py`` = "y" hashed as ``a.py`` = "X" and ``bc.py`` = "y" (the same
    bytes run together), and a cache compiled from one was taken for the
    other."""
    apart = _digest_of(tmp_path / "c", {"a.py": "Xb", "c.py": "y"})
    assert apart != _digest_of(tmp_path / "d", {"a.py": "X", "bc.py": "y"})
    # each name is ended by a NUL: without it, "a.py.py" = "" then "b.py" = Z hashed as "a.py" = 0x79702e bytes
    # ("\0\0\0b.py" + Z's length + Z), the 8-byte length of "a.py.py"'s content read as the rest of a name
    z = b"z" * (0x79702E - 3 - 4 - 8)
    one, two = tmp_path / "e", tmp_path / "f"
    one.mkdir()
    two.mkdir()
    (one / "a.py.py").write_bytes(b"")
    (one / "b.py").write_bytes(z)
    (two / "a.py").write_bytes(b"\0\0\0b.py" + len(z).to_bytes(8, "little") + z)
    assert kc._source_digest(str(one)) != kc._source_digest(str(two))


def test_the_sources_digest_does_not_depend_on_the_folder_listing_order(tmp_path, monkeypatch):
    """The files are hashed by name order: ``os.listdir``'s own order differs
    between file systems (creation order on tmpfs, name hash on ext4), and the
    same sources copied elsewhere would read as other code (`code_digest`:
    a fitted surrogate refitted)."""
    (tmp_path / "a.py").write_text("A = 1\n")
    (tmp_path / "b.py").write_text("B = 1\n")
    (tmp_path / "c.py").write_text("C = 1\n")
    listdir = os.listdir
    digests = set()
    for reverse in (False, True):
        monkeypatch.setattr(kc.os, "listdir", lambda path, reverse=reverse: sorted(listdir(path), reverse=reverse))
        digests.add(kc._source_digest(str(tmp_path)))
    monkeypatch.undo()
    assert len(digests) == 1


def test_help_lists_inherited_fields_first_in_the_constructors_order():
    """The Attributes section lists fields in the dataclass's own order
    (its constructor's): a base class's first, as `_fields` promises.
    Walking the classes derived-first listed a Programmed's offset and
    solver_failures before the mapping, cfg and seed it inherits."""
    import dataclasses
    import inspect

    import xbarsim as xs

    for cls in (xs.Programmed, xs.TransferBatch):
        section = inspect.getdoc(cls).split("\nAttributes\n----------\n")[1]
        listed = [line.split(" : ")[0] for line in section.splitlines() if line and not line.startswith(" ")]
        order = [f.name for f in dataclasses.fields(cls)]
        assert listed == [name for name in order if name in listed], cls
        assert listed[:3] == ["mapping", "cfg", "seed"], cls


def test_help_of_a_class_whose_source_cannot_be_read_is_its_docstring_as_written(monkeypatch):
    """In a zipped install a module's ``__file__`` is a ``.py`` path inside
    the archive, which open() cannot read: the docstring stays as written
    (the module's promise), where an OSError escaped from help() and
    ``cls.__doc__``."""
    import dataclasses
    import sys
    import types

    from xbarsim._docfields import document_fields

    module = types.ModuleType("xbarsim._zipped_example")
    module.__file__ = "/nowhere/xbarsim-0.0.zip/xbarsim/_zipped_example.py"
    monkeypatch.setitem(sys.modules, module.__name__, module)

    @document_fields
    @dataclasses.dataclass
    class Example:
        """A class from a zipped install."""

        r: float = 1.0
        """A resistance, ohms."""

    Example.__module__ = module.__name__
    assert Example.__doc__ == "A class from a zipped install."


def test_code_digest_covers_kernels_kept_outside_the_package(tmp_path, monkeypatch):
    """In a checkout or an editable install the kernels sit in ``kernels/``
    beside ``xbarsim/``, outside the package's folder: `code_digest` hashes
    them too ("of the xbarsim package and of its kernels"), so an edited
    kernel is other code (found by mutation testing)."""
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    (kernels / "nodal.py").write_text("A = 1\n")
    monkeypatch.setattr(kc, "_kernel_folder", lambda: str(kernels))
    try:
        kc.code_digest.cache_clear()
        before = kc.code_digest()
        (kernels / "nodal.py").write_text("A = 2\n")
        kc.code_digest.cache_clear()
        after = kc.code_digest()
    finally:
        kc.code_digest.cache_clear()
    assert before != after
