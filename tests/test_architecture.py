"""The house rules that no single module can check for itself (docs/method.md §6).

* Packages meet only at their public faces: a private module (a dotted name with a segment
  ``_name``) or a private name is imported only from inside the package that holds it
  (``empirical.sweep`` may use ``empirical.sweep._store`` and ``empirical.runtime``, not
  ``empirical.diagnostic._features``). Tests are white-box and exempt; ``bench/``,
  ``examples/``, ``proofs/`` and ``training/`` are users of the public faces like anyone else.
* No function of more than :data:`MAX_FUNCTION_LINES` lines of code (docstring, blank
  lines and comments not counted) outside ``bench/``.
* No tracked file (code, docs, results, logs) holds an absolute path of the machine it was
  made on.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Folders whose code must use other packages through their public faces.
CHECKED = ("spanthm", "empirical", "bench", "examples", "proofs", "training")
#: Private modules of other distributions that are their documented way in: SevenNet's
#: key names live in ``sevenn._keys`` (its own code and docs import them from there).
FOREIGN_ALLOWED = {"sevenn._keys"}
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported(path: Path):
    """``(line, dotted target)`` of every import in ``path``; ``from a import b`` gives
    ``a.b`` (relative imports resolved against the module's package)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                yield node.lineno, f"{source}.{alias.name}"


def private_crossings(path: Path):
    """``(line, target)`` for each import in ``path`` of a private module or name held by
    a package that ``path`` is not inside."""
    module = _module_name(path)
    out = []
    for line, target in _imported(path):
        segments = target.split(".")
        for i, segment in enumerate(segments):
            if segment.startswith("_") and not segment.startswith("__"):
                owner = ".".join(segments[:i])
                if (ROOT / Path(*segments[:i])).with_suffix(".py").is_file():
                    owner = owner.rpartition(".")[0]    # a module's private name: its package's
                foreign = ".".join(segments[: i + 1])
                inside = module == owner or module.startswith(owner + ".")
                if not inside and foreign not in FOREIGN_ALLOWED:
                    out.append((line, target))
                break
    return out


def _python_files(folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def test_no_import_crosses_into_a_private_module():
    found = [f"{p.relative_to(ROOT)}:{line}: {target}"
             for p in _python_files(CHECKED) for line, target in private_crossings(p)]
    assert not found, ("private modules or names imported across package boundaries "
                       "(export them from the package instead):\n" + "\n".join(found))


def test_the_crossing_check_can_fail(tmp_path, monkeypatch):
    """A planted cross-package import of a private module, and of a private name, are found;
    the same import inside the owning package is not."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "empirical" / "sweep").mkdir(parents=True)
    (tmp_path / "empirical" / "diagnostic").mkdir(parents=True)
    bad = tmp_path / "empirical" / "sweep" / "_tasks.py"
    (tmp_path / "empirical" / "io.py").write_text("")
    bad.write_text("from ..diagnostic._features import batch_size\n"
                   "from empirical.diagnostic import _helper\n"
                   "from ..runtime import stream\n"
                   "from ..io import _check_anchor\n")
    ok = tmp_path / "empirical" / "diagnostic" / "_cells.py"
    ok.write_text("from ._features import batch_size\nfrom ..io import _check_anchor\n")
    assert [t for _, t in private_crossings(bad)] == [
        "empirical.diagnostic._features.batch_size", "empirical.diagnostic._helper"]
    assert private_crossings(ok) == []


def code_lines(node: ast.AST, source_lines) -> int:
    """Lines of code of a function: its body less the docstring, blank lines and comments."""
    body = node.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        if len(body) == 1:
            return 0
        body = body[1:]
    lines = source_lines[body[0].lineno - 1: node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def long_functions(path: Path):
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    return [(node.name, node.lineno, code_lines(node, lines))
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and code_lines(node, lines) > MAX_FUNCTION_LINES]


def test_no_function_is_longer_than_the_limit():
    folders = [f for f in (*CHECKED, "tests") if f != "bench"]
    found = [f"{p.relative_to(ROOT)}:{line} {name}: {n} lines"
             for p in _python_files(folders) for name, line, n in long_functions(p)]
    assert not found, (f"functions over {MAX_FUNCTION_LINES} lines of code (split them into "
                       "named steps):\n" + "\n".join(found))


def test_the_length_check_can_fail(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES + 1))
    path = tmp_path / "long.py"
    path.write_text(f'def f():\n    """doc\n\n    more doc"""\n    # note\n\n{body}\n')
    assert [(name, n) for name, _, n in long_functions(path)] == [("f", MAX_FUNCTION_LINES + 1)]
    path.write_text(f'def f():\n    """doc"""\n{body.rsplit(chr(10), 1)[0]}\n')
    assert long_functions(path) == []


def machine_paths():
    """Absolute paths of this machine that must never be written into a tracked file: the
    checkout, the Python environment, the home and temporary directories, and the usual
    roots of user files."""
    places = {str(ROOT), sys.prefix, sys.base_prefix, str(Path.home()), tempfile.gettempdir()}
    return sorted(p for p in places if p not in ("/", "")) + ["/home/", "/Users/", "/root/",
                                                             "/work/", "/tmp/"]


def _tracked_files():
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.split(b"\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: no list of tracked files")
    return [ROOT / os.fsdecode(name) for name in listed if name]


def absolute_paths_in(path: Path, needles):
    try:
        text = path.read_bytes()
    except OSError:
        return []
    if b"\0" in text[:8192]:
        return []
    text = text.decode("utf-8", errors="replace")
    return sorted({n for n in needles if re.search(r"(?<![\w.~-])" + re.escape(n), text)})


def test_no_tracked_file_holds_a_machine_path():
    needles = machine_paths()
    here = Path(__file__).resolve()     # names the roots it looks for
    found = [f"{p.relative_to(ROOT)}: {', '.join(hits)}" for p in _tracked_files()
             if p.is_file() and p.resolve() != here and (hits := absolute_paths_in(p, needles))]
    assert not found, "absolute machine paths in tracked files:\n" + "\n".join(found)


def test_the_path_check_can_fail(tmp_path):
    planted = tmp_path / "results.json"
    planted.write_text('{"source": "' + str(ROOT / "runs" / "epoch_0000.pt") + '"}')
    assert absolute_paths_in(planted, machine_paths()) != []
    planted.write_text('{"source": "runs/epoch_0000.pt", "shebang": "#!/usr/bin/env bash"}')
    assert absolute_paths_in(planted, machine_paths()) == []


def _packages():
    for folder in ("spanthm", "empirical"):
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            yield _module_name(init)


@pytest.mark.parametrize("package", list(_packages()))
def test_every_public_face_resolves(package):
    """Each package's ``__all__`` names things it really has (a face is a promise)."""
    import importlib

    module = importlib.import_module(package)
    names = getattr(module, "__all__", [])
    assert len(names) == len(set(names)), f"{package}.__all__ repeats a name"
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"{package}.__all__ names what it does not have: {missing}"
