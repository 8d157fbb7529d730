"""Safe output for :mod:`empirical`: a reader never sees a half-written file, and no run
ever loses a user's file.

* Every output directory is written as one set with a manifest (:data:`MANIFEST_NAME`:
  tool, version, command, the sha256 of each file); ``--overwrite`` replaces a directory
  only when the manifest vouches for every entry in it (:func:`check_output_dir`).
* No output is, or holds, an input of the same run (:func:`check_inputs`), whatever the
  spelling of the paths; a symbolic link is followed, the current directory is never
  replaced.
* Single output files (a dataset, a plot) replace only a file recognised as ours
  (:func:`check_output_file`); a training run directory holds only its checkpoints
  (:func:`check_train_dir`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from spanthm.io import (MANIFEST_NAME, atomic_path, contains, describe, read_manifest, resolve_out,
                         unvouched, unwritable_anchor, write_set)

__all__ = ["atomic_path", "write_files", "write_file_set", "check_output_dir", "OutputExists",
           "ForeignFiles", "check_inputs", "input_paths", "read_json", "MAX_JSON_BYTES",
           "MAX_JSON_DEPTH", "MANIFEST_NAME", "read_manifest", "unvouched",
           "check_output_file", "check_train_dir", "write_run_set", "is_generated_dataset", "why_not_a_file"]

#: Bounds on a results file read back (``empirical compare``): ours are well under 1 MiB
#: and nested 6 deep.
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_JSON_DEPTH = 32


class OutputExists(ValueError):
    """The output directory already holds files and ``overwrite`` was not given."""


def write_files(out_dir, files: "dict[str, bytes]") -> "list[Path]":
    """Write ``{name: content}`` into ``out_dir``, each file atomically (:func:`atomic_path`),
    in the given order; the content is computed by the caller before the first write, so a
    content error writes nothing. Returns the paths written."""
    written = []
    for name, blob in files.items():
        path = Path(out_dir) / name
        with atomic_path(path, suffix=Path(name).suffix) as tmp:
            Path(tmp).write_bytes(blob)
        written.append(path)
    return written


class ForeignFiles(ValueError):
    """The output directory holds files this tool did not write (``--overwrite`` refused)."""


def _listing(path: Path) -> str:
    return describe(sorted(p.name for p in path.iterdir()))


def input_paths(specs) -> "list[Path]":
    """The paths among ``specs`` (data sources, checkpoint paths, adapter specs
    ``nequip:PATH``, ``mace:PATH@LAYER``, ``sevenn:PATH[@MODAL]``, sweep configs and
    stores) that exist here; names such as ``"aspirin"`` or ``sevenn:7net-0`` that are not
    a path are left out."""
    found = []
    for spec in specs or ():
        if spec is None:
            continue
        text = str(spec)
        candidates = [text]
        for prefix in ("nequip:", "mace:", "sevenn:"):
            if text.startswith(prefix):
                rest = text[len(prefix):]
                candidates = [rest] + ([rest.rsplit("@", 1)[0]] if "@" in rest else [])
        for candidate in candidates:
            if candidate and os.path.lexists(candidate):
                found.append(Path(candidate))
                break
    return found


def why_not_a_file(path) -> str:
    """Why ``path`` cannot be read as a regular file, in a few words: ``"no such file"``,
    ``"a symbolic link that does not resolve"``, ``"a directory"`` or ``"not a regular
    file (a device, FIFO or socket)"`` (the loaders' messages name the path and this)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        return "a symbolic link that does not resolve"
    if not path.exists():
        return "no such file"
    if path.is_dir():
        return "a directory, not a file"
    return "not a regular file (a device, FIFO or socket)"


def check_inputs(out, inputs, what: str = "--out") -> None:
    """Refuse an output location that is, or contains, one of ``inputs`` (any path a run
    reads: data, checkpoints, configs, run folders), whatever the spelling of the paths
    (both sides are resolved, links included). An output inside an input folder is allowed
    (nothing there is replaced). ``ValueError`` naming both."""
    real = resolve_out(out)
    for given in input_paths(inputs):
        source = Path(os.path.realpath(given))    # a link loop stays as it is: the loader
        if contains(real, source):                # names it, with its own flag
            raise ValueError(f"{out} {'is' if real == source else 'contains'} the input "
                             f"{given}: a run never writes over what it reads; give another "
                             f"{what}")


def check_anchor(out: Path, real: Path, what: str = "") -> None:
    """Refuse ``out`` (resolved: ``real``) when its nearest existing ancestor is not a
    writable directory (the set is assembled beside it)."""
    anchor = unwritable_anchor(real)
    if anchor is not None:
        raise ValueError(f"cannot write {what + ' ' if what else 'into '}{out}: {anchor} is "
                         "not a writable directory")


def check_output_dir(out_dir, overwrite: bool = False, inputs=()) -> Path:
    """Refuse, before any work, an output directory that cannot receive a run (creates and
    changes nothing; raises ``ValueError`` naming the path):

    * it is or contains one of ``inputs`` (:func:`check_inputs`);
    * it exists and is not a directory;
    * it is the current directory or one of its parents (the set is renamed into place as
      a whole, which cannot replace the directory a shell is in);
    * it holds files and ``overwrite`` is not given (:class:`OutputExists`), or ``overwrite``
      is given but some entry is not vouched for by our manifest (:class:`ForeignFiles`:
      a directory we did not write, or one with files added or edited since, is never
      replaced);
    * its parent (where the set is assembled) is not a writable directory.

    A symbolic link is followed: the real directory receives the output. Returns
    ``out_dir`` as a :class:`Path`."""
    out = Path(out_dir)
    real = resolve_out(out)
    check_inputs(out, inputs)
    if real.exists() and not real.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if real.is_dir() and contains(real, Path(os.path.realpath(os.getcwd()))):
        raise ValueError(f"{out} is the current directory or contains it: a run's output "
                         "directory is replaced as a whole, so give a new sub-directory, "
                         f"e.g. {out / 'run'}")
    if real.is_dir() and any(real.iterdir()):
        if not overwrite:
            raise OutputExists(f"{out} already holds files ({_listing(real)}): give another "
                               "output directory, or --overwrite (overwrite=True) to replace it")
        _refuse_foreign(out, real)
    check_anchor(out, real)
    return out


def _refuse_foreign(out, real: Path) -> None:
    foreign = unvouched(real)
    if foreign:
        raise ForeignFiles(f"{out} holds files this tool did not write or that changed since "
                           f"({describe(foreign)}): "
                           f"--overwrite replaces only a directory written by this tool (with "
                           f"its {MANIFEST_NAME}) and nothing else; nothing was changed")


def write_file_set(out_dir, files: "dict[str, bytes]", overwrite: bool = False,
                   inputs=(), kind: str = "set") -> "list[Path]":
    """Write ``{name: content}`` and a manifest (:data:`MANIFEST_NAME`: tool, version,
    command, the sha256 of every file) as one set: into a temporary sibling directory
    first, then renamed onto ``out_dir``, so a reader (or an interrupt) sees the whole set
    or none of it, and never files of an earlier run beside the new ones. ``out_dir`` must
    pass :func:`check_output_dir` (``overwrite`` replaces only a directory our manifest
    vouches for as a whole, checked again just before the swap; never one holding or
    inside one of ``inputs``). Returns the paths written."""
    out = check_output_dir(out_dir, overwrite, inputs)

    def recheck(real: Path) -> None:
        if real.is_dir() and any(real.iterdir()):
            if not overwrite:
                raise OutputExists(f"{out} gained files during the run ({_listing(real)}); "
                                   "nothing was written")
            _refuse_foreign(out, real)

    return write_set(out, files, kind=kind, recheck=recheck)


def write_run_set(out_dir, result, render_report, figures=None, overwrite: bool = False,
                  extra=None) -> "list[Path]":
    """Write a run's outputs as one set (:func:`write_file_set`): each figure of
    ``figures`` (``{file name: make(result) -> matplotlib figure}``, left out when
    ``None``) as a PNG (:func:`empirical.render.png_bytes`), ``report.md`` from
    ``render_report(result, png_names)``, ``results.json`` from ``result.to_json()``, and
    the ``extra`` files (``{name: bytes}``). Everything is rendered before anything is
    written."""
    from .render import png_bytes

    files = {name: png_bytes(make(result)) for name, make in (figures or {}).items()}
    files["report.md"] = render_report(result, list(files)).encode()
    files["results.json"] = result.to_json().encode()
    files.update(extra or {})
    return write_file_set(out_dir, files, overwrite=overwrite)


#: The files ``empirical train`` writes into its run directory (checkpoints, each written
#: atomically; a ``.NAME.XXXX.tmp`` is what a killed write leaves). Training never deletes a
#: file; a run directory holding anything else is refused.
TRAIN_FILE = re.compile(r"(?:\.)?(?:last|best|backbone|epoch_\d{4,})\.pt(?:\.[^/]*\.tmp)?")


def train_foreign(run_dir, prefix: str = "") -> "list[str]":
    """Entries of a training run directory that ``empirical train`` does not write
    (:data:`TRAIN_FILE`; links and sub-directories included), as relative names."""
    return [prefix + p.name + ("/" if p.is_dir() else "")
            for p in sorted(Path(run_dir).iterdir(), key=lambda p: p.name)
            if p.is_symlink() or not p.is_file() or not TRAIN_FILE.fullmatch(p.name)]


def check_train_dir(out_dir, resume: bool, inputs=()) -> Path:
    """Refuse, before any work, a training run directory: one that is, holds or lies
    inside an input; a path that is not a directory; a directory that holds files unless
    ``resume``; with ``resume``, one holding anything but the checkpoints training writes
    (:func:`train_foreign`), since a resumed run replaces them in place. Training writes
    only its own file names and never deletes. ``ValueError`` naming the path."""
    out = Path(out_dir)
    real = resolve_out(out)
    check_inputs(out, inputs)
    if real.exists() and not real.is_dir():
        raise ValueError(f"{out} exists and is not a directory")
    if real.is_dir() and any(real.iterdir()):
        if not resume:
            raise OutputExists(f"{out} already holds files ({_listing(real)}): use "
                               "--resume to continue a run there, or another --out")
        foreign = train_foreign(real)
        if foreign:
            raise ForeignFiles(f"{out} holds files training did not write "
                               f"({describe(foreign)}): a run directory holds only its "
                               "checkpoints; give another --out")
    check_anchor(out, real)
    return out


#: The first bytes of every PNG file.
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: ``metadata.npy`` of a dataset we generate is a few KiB; a larger one is not ours.
MAX_DATASET_METADATA_BYTES = 1024 * 1024
#: The members of the npz ``empirical data aspirin`` writes (:func:`empirical.data.save_npz`).
DATASET_MEMBERS = {"positions.npy", "numbers.npy", "energies.npy", "forces.npy",
                   "metadata.npy"}


def is_png(path) -> bool:
    """Whether ``path`` is a regular file starting with the PNG signature."""
    with open(path, "rb") as handle:
        return handle.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def is_generated_dataset(path) -> bool:
    """Whether ``path`` is an npz written by ``empirical data aspirin``: exactly its members
    and a metadata JSON of the GFN2-xTB generator (``method``, ``generation_seconds``).
    Only the small metadata member is read (its declared size is checked first)."""
    import io
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path) as archive:
            if set(archive.namelist()) != DATASET_MEMBERS:
                return False
            info = archive.getinfo("metadata.npy")
            if info.file_size > MAX_DATASET_METADATA_BYTES:
                return False
            raw = archive.read(info)
        meta = json.loads(str(np.load(io.BytesIO(raw), allow_pickle=False)))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False
    return (isinstance(meta, dict) and meta.get("method") == "GFN2-xTB"
            and "generation_seconds" in meta)


def check_output_file(path, overwrite: bool = False, ours=None, what: str = "--out",
                      inputs=()) -> Path:
    """Refuse, before any work, an output file path: a directory; an existing file unless
    ``overwrite`` and ``ours(path)`` says this tool wrote it; a path whose directory is not
    writable; one that is or holds an input. A symbolic link is followed (the file it
    points to is replaced, the link stays). Returns the resolved path to write."""
    out = Path(path)
    real = resolve_out(out)
    check_inputs(out, inputs, what=what)
    if real.is_dir():
        raise ValueError(f"{what} {out} is a directory; give a file name")
    if real.exists():
        if not overwrite:
            raise ValueError(f"{what} {out} already exists: give another file name, or "
                             "--overwrite to replace a file this tool wrote")
        if not real.is_file() or ours is None or not ours(real):
            raise ValueError(f"{what} {out} exists and is not a file this tool wrote; it is "
                             "left as it is: give another file name")
    check_anchor(out, real, what)
    return real


def read_json(path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """Parse a JSON file of at most ``max_bytes`` bytes nested at most ``max_depth`` deep;
    ``ValueError`` naming the file otherwise (size and depth are checked before parsing)."""
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"{path} is larger than {max_bytes >> 20} MiB: not a results file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    from spanthm.verify import json_depth

    if json_depth(text) > max_depth:
        raise ValueError(f"{path} is nested deeper than {max_depth} levels: not a results file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
