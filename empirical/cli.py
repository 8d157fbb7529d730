"""``empirical`` command line: a thin layer over :mod:`empirical`.

Exit codes: 0 success; 1 a run finished but failed its own check (e.g. the MD temperature
is off target; nothing is written); 2 bad input (one line on stderr naming the problem, no
traceback, nothing written); 130 interrupted (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import List, Optional

from spanthm.cli import int_at_least

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


class BadInput(Exception):
    """Command-line input error (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise BadInput(message)


def _positive(kind, name: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {text!r}") \
                from None
        if not value > 0 or value != value:
            raise argparse.ArgumentTypeError(f"{name} must be > 0, got {text}")
        return value
    return parse


def _bounded_int(name: str, low, module: str, constant: "Optional[str]" = None):
    """An integer option ``>= low`` and, when ``constant`` is named, ``<= module.constant``;
    ``low`` is a number or the name of a constant of ``module``. Bounds are read when the
    option is given (the module, e.g. the backbone's, imports torch: only commands that
    need it)."""
    def parse(text: str) -> int:
        from importlib import import_module

        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        mod = import_module(module)
        lo = getattr(mod, low) if isinstance(low, str) else low
        if constant is None:
            if value < lo:
                raise argparse.ArgumentTypeError(f"must be at least {lo} ({low}), got {value}")
            return value
        high = getattr(mod, constant)
        if not lo <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {high} ({constant}), "
                                             f"got {value}")
        return value
    return parse


def _at_least(name: str, module: str, constant: str):
    """An integer option ``>= module.constant`` (read when the option is given)."""
    return _bounded_int(name, constant, module)


#: The package faces that hold the bounds the options name (each imported when such an
#: option is given: the backbone's imports torch, wanted only by commands that need it).
_DIAGNOSTIC, _DATA, _BACKBONE, _CALIBRATION = ("empirical.diagnostic", "empirical.data",
                                               "empirical.backbone", "empirical.calibration")


def _finite_float(name: str, low: float = 0.0, low_open: bool = False,
                  module: Optional[str] = None, constant: Optional[str] = None):
    """A finite float option ``>= low`` (``> low`` if ``low_open``) and, when ``constant``
    is named, ``<= module.constant`` (read when the option is given)."""
    def parse(text: str) -> float:
        from importlib import import_module

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        high = float("inf") if constant is None else getattr(import_module(module), constant)
        below = value <= low if low_open else value < low
        if not (value == value and abs(value) != float("inf")) or below or value > high:
            limit = "" if constant is None else f" and at most {high:g} ({constant})"
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if low_open else '>='}"
                                             f" {low:g}{limit}, got {text}")
        return value
    return parse


BACKBONES_HELP = ("checkpoint paths, shipped names, or adapter specs: nequip:PATH (a nequip "
                  "0.19 .ckpt or .nequip.zip; extra [nequip]), sevenn:NAME[@MODAL] or "
                  "sevenn:PATH (SevenNet: 7net-0, 7net-l3i5, 7net-mf-0@PBE; extra "
                  "[sevenn]), mace:PATH[@LAYER] (a MACE .model file written by mace_run_train; "
                  "see the README)")
TRUST_HELP = ("load third-party checkpoint files (nequip:PATH, sevenn:PATH, mace:PATH), which "
              "are pickled code that runs on loading: only for files from a source you trust "
              "(files an installed package lists with their hash in its RECORD, like "
              "SevenNet's pretrained models, need no flag)")
DEVICE_HELP = "where the backbones run: cpu (default), cuda or cuda:N"
PAIRED_HELP = ("give every model the run seed's frames, split, rotations and signal (shared "
               "draws, for model-versus-model contrasts); default: each model its own, drawn "
               "from the seed and its name (independent rows)")
def _cache_path(text: str) -> Path:
    """``--cache DIR``: a path, never empty (an empty one would mean the current
    directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give a directory, or --no-cache")
    return Path(text)


CACHE_HELP = ("the feature cache shared by every command (default: $SPECTRAL_CEILINGS_CACHE, "
              "else $XDG_CACHE_HOME/spectral-ceilings, else ~/.cache/spectral-ceilings; "
              "docs/method.md §2.12): model runs found there are reused, and results.json "
              "says which")
ROTATE_HELP = ("how a configuration's further rotations are obtained: auto (default: by "
               "D(R'R^-1) from the first rotation's features, for a backbone that passes its "
               "equivariance check, with a per-run check against the model) or model (the "
               "model runs on every rotation); docs/method.md §2.13")
OVERWRITE_HELP = ("replace an output directory this tool wrote (its manifest vouches for every "
                  "file in it); a directory holding anything else, or an input, is refused")


def _md_float(constant: Optional[str], low_open: bool = True):
    """A finite float option of ``data aspirin``: ``> 0`` (``>= 0`` unless ``low_open``),
    at most ``empirical.data.<constant>`` when one is named."""
    return _finite_float(constant or "", 0.0, low_open, _DATA, constant)


def _options() -> argparse.ArgumentParser:
    """An empty parent parser: options given to subcommands through argparse ``parents=``
    (a subcommand's own options form its first parent, so that they come first in its
    usage and help)."""
    return argparse.ArgumentParser(add_help=False)


def _flag(option: str, help: Optional[str] = None) -> argparse.ArgumentParser:
    """A parent parser of one ``store_true`` option."""
    parent = _options()
    parent.add_argument(option, action="store_true", help=help)
    return parent


def _out(help: Optional[str]) -> argparse.ArgumentParser:
    """A parent parser of ``--out`` (optional; its help names the command's default)."""
    parent = _options()
    parent.add_argument("--out", type=Path, default=None, help=help)
    return parent


@dataclass(frozen=True)
class _Shared:
    """The parent parsers of the options several subcommands share."""

    overwrite: argparse.ArgumentParser
    no_plots: argparse.ArgumentParser
    threads: argparse.ArgumentParser
    no_progress: argparse.ArgumentParser
    checkpoints: argparse.ArgumentParser     # --trust-checkpoints
    device: argparse.ArgumentParser
    cache: argparse.ArgumentParser           # --cache DIR, --no-cache
    rotate: argparse.ArgumentParser          # --rotate {auto,model}

    @classmethod
    def build(cls) -> "_Shared":
        threads, device = _options(), _options()
        threads.add_argument("--threads", type=_positive(int, "--threads"), default=None,
                             help="torch CPU threads (default: all cores)")
        device.add_argument("--device", default="cpu", help=DEVICE_HELP)
        cache, rotate = _options(), _options()
        where = cache.add_mutually_exclusive_group()
        where.add_argument("--cache", type=_cache_path, default=None, metavar="DIR",
                           help=CACHE_HELP)
        where.add_argument("--no-cache", action="store_true",
                           help="compute every feature and store none")
        rotate.add_argument("--rotate", choices=["auto", "model"], default="auto",
                            help=ROTATE_HELP)
        return cls(overwrite=_flag("--overwrite", OVERWRITE_HELP), no_plots=_flag("--no-plots"),
                   threads=threads, no_progress=_flag("--no-progress"),
                   checkpoints=_flag("--trust-checkpoints", TRUST_HELP), device=device,
                   cache=cache, rotate=rotate)

    def run(self, out_help: str, plots: bool = True) -> List[argparse.ArgumentParser]:
        """The closing options of a run command: ``--out`` (this help), ``--overwrite``,
        ``--no-plots`` (when it makes plots), ``--threads``, ``--no-progress``."""
        return [_out(out_help), self.overwrite, *([self.no_plots] if plots else []),
                self.threads, self.no_progress]

    def backbone_run(self, out_help: str) -> List[argparse.ArgumentParser]:
        """``--trust-checkpoints``, ``--device``, ``--cache``/``--no-cache``, ``--rotate``
        and :meth:`run`'s options: a command that loads backbones."""
        return [self.checkpoints, self.device, self.cache, self.rotate, *self.run(out_help)]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="empirical", description="Spectral-injection diagnostic of "
                     "equivariant force fields (docs/method.md §2-§5).")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True
    shared = _Shared.build()
    for add in (_data_parser, _train_parser, _diagnose_parser, _profile_parser, _survey_parser,
                _sweep_parser, _c5_parser, _controls_parser, _compare_parser,
                _reproduce_parser, _backbones_parser, _cache_parser):
        add(sub, shared)
    return parser


def _data_parser(sub, shared: _Shared) -> None:
    data = sub.add_parser("data", help="generate or inspect datasets")
    dsub = data.add_subparsers(dest="data_command", parser_class=_Parser, metavar="ACTION")
    dsub.required = True
    p = _options()
    p.add_argument("--frames", type=_bounded_int("--frames", 1, _DATA, "MAX_GENERATED_FRAMES"),
                   default=5000)
    p.add_argument("--temperature", type=_md_float("MAX_TEMPERATURE_K"), default=500.0,
                   help="Langevin target temperature in K (default 500, as MD17)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="output npz (default ./aspirin_gfn2xtb_<T>K.npz); an existing file "
                   "is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out when it is a dataset this command wrote (recognised "
                   "by its members and generator metadata); any other file is refused")
    p.add_argument("--chains", type=_bounded_int("--chains", 1, _DATA, "MAX_CHAINS"), default=1,
                   help="independent trajectories run in parallel processes (default 1)")
    p.add_argument("--equilibration-ps", type=_md_float("MAX_EQUILIBRATION_PS", low_open=False),
                   default=5.0)
    p.add_argument("--timestep-fs", type=_md_float("MAX_TIMESTEP_FS"), default=0.5)
    p.add_argument("--spacing-fs", type=_md_float(None), default=10.0,
                   help="frame spacing in fs, a multiple of --timestep-fs (default 10)")
    p.add_argument("--friction", type=_md_float("MAX_FRICTION_PER_FS"), default=0.01,
                   help="Langevin friction in 1/fs (default 0.01)")
    dsub.add_parser("aspirin", help="generate the aspirin GFN2-xTB MD dataset (needs the "
                    "data extra: ase, tblite)", parents=[p, shared.no_progress])

    p = dsub.add_parser("info", help="frames, atoms, formula, energies, forces, temperature")
    p.add_argument("source", help='"aspirin", an MD17/rMD17/empirical npz, or an extxyz file')
    p.add_argument("--json", action="store_true")


def _train_parser(sub, shared: _Shared) -> None:
    """``train``: its training options default to :class:`empirical.backbone.TrainSettings`'
    (``None`` here: not given)."""
    p = _options()
    p.add_argument("--data", default="aspirin", help='dataset source (default "aspirin")')
    p.add_argument("--L", type=_bounded_int("--L", 1, _BACKBONE, "MAX_L"), default=2,
                   help="max feature degree (>= 1)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), required=True)
    p.add_argument("--out", type=Path, required=True, help="run directory (checkpoints)")
    p.add_argument("--channels", type=_bounded_int("--channels", 1, _BACKBONE, "MAX_CHANNELS"),
                   default=32)
    p.add_argument("--layers", type=_bounded_int("--layers", 2, _BACKBONE, "MAX_LAYERS"), default=3)
    p.add_argument("--activation", default="silu", choices=["silu", "tanh", "softplus", "gelu"])
    p.add_argument("--r-max", type=_positive(float, "--r-max"), default=5.0)
    p.add_argument("--epochs", type=_bounded_int("--epochs", 1, _BACKBONE, "MAX_EPOCHS"))
    p.add_argument("--batch-size", type=_bounded_int("--batch-size", 0, _BACKBONE, "MAX_BATCH_SIZE"),
                   help="0: 32 on CUDA, 8 on CPU")
    p.add_argument("--lr", type=_positive(float, "--lr"))
    p.add_argument("--energy-weight", type=_finite_float("--energy-weight"))
    p.add_argument("--force-weight", type=_finite_float("--force-weight"))
    p.add_argument("--train-frames", type=_positive(int, "--train-frames"))
    p.add_argument("--val-frames", type=_positive(int, "--val-frames"))
    p.add_argument("--test-frames", type=_positive(int, "--test-frames"))
    p.add_argument("--split-seed", type=int_at_least("--split-seed", 0))
    p.add_argument("--max-minutes", type=_finite_float("--max-minutes"),
                   help="stop after the epoch that passes this wall time (0: no limit)")
    p.add_argument("--save-every", type=int_at_least("--save-every", 0), metavar="N",
                   help="also keep OUT/epoch_<k>.pt for the initialization and every N-th "
                   "epoch (0: no; the checkpoints of the ceiling over training)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=_positive(int, "--threads"), default=None,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    sub.add_parser("train", help="train a NequIP-style backbone on energies and forces",
                   parents=[p, shared.no_progress])


def _diagnose_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--data", default="aspirin", help='dataset source (default "aspirin")')
    p.add_argument("--backbones", nargs="+", default=None, metavar="CKPT",
                   help=BACKBONES_HELP + " (default: the shipped ones)")
    p.add_argument("--marked", nargs=2, type=int_at_least("--marked", 0), default=None,
                   metavar=("A", "B"), help="marked atom pair, 0-based (default: the "
                   "dataset's marked bond; aspirin: 6 7 = C7=O8)")
    p.add_argument("--degrees", nargs="+", type=_positive(int, "--degrees"), default=[1, 2, 3],
                   metavar="D", help="SPN polynomial degrees (default 1 2 3)")
    p.add_argument("--lmax", type=int_at_least("--lmax", 0), default=7,
                   help="highest target degree l (default 7)")
    p.add_argument("--k", type=_positive(int, "--k"), default=None,
                   help="SPN width (default: per d, the widest with >= 2 samples per monomial)")
    p.add_argument("--reduction", default="irrep", choices=["irrep", "pca"])
    p.add_argument("--spn", default="ridge", choices=["ridge", "trained"])
    p.add_argument("--n-boot", type=_at_least("--n-boot", _DIAGNOSTIC, "MIN_N_BOOT"), default=2000,
                   help="bootstrap resamples (default 2000; at least 10)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--frames", type=_bounded_int("--frames", 2, _DATA, "MAX_FRAMES"),
                   default=None, help="use a seeded subset of this many frames (default: all)")
    p.add_argument("--test-fraction", type=_positive(float, "--test-fraction"), default=0.2)
    p.add_argument("--eps", type=_positive(float, "--eps"), default=None,
                   help="injection amplitude in eV (default: per backbone, its energy-error SD)")
    p.add_argument("--k-sweep", nargs="*", type=_positive(int, "--k-sweep"),
                   default=[1, 2, 3, 4], metavar="M",
                   help="channels per degree of the capacity sweep (default 1 2 3 4; none: skip)")
    p.add_argument("--rotations", type=_positive(int, "--rotations"), default=1,
                   help="samples per configuration, each under its own Haar rotation (default 1)")
    p.add_argument("--capacity", default="auto", choices=["auto", "fixed"],
                   help="auto (default): where a degree's boundary l = dL is not recovered, "
                   "refit it at wider probes and more rotations per configuration "
                   "(docs/method.md §2.6); fixed: one width")
    sub.add_parser("diagnose", help="the spectral-injection diagnostic (default: shipped "
                   "aspirin, four shipped L=2 backbones, d = 1, 2, 3, l = 0..7)",
                   parents=[p, *shared.backbone_run(
                       "output directory (default runs/diagnose-<data>-seed<seed>)")])


def _profile_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--data", default="aspirin")
    p.add_argument("--backbones", nargs="+", default=None, metavar="CKPT",
                   help=BACKBONES_HELP + " (default: the shipped ones)")
    p.add_argument("--d", type=_positive(int, "--d"), default=2, help="probe degree (default 2)")
    p.add_argument("--lmax", type=int_at_least("--lmax", 0), default=None,
                   help="highest target degree (default d x max L + 2, at most 12)")
    p.add_argument("--frames", type=_bounded_int("--frames", 2, _DATA, "MAX_FRAMES"),
                   default=1000, help="seeded subset of frames (default 1000)")
    p.add_argument("--n-boot", type=_at_least("--n-boot", _DIAGNOSTIC, "MIN_N_BOOT"), default=500)
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--paired", action="store_true", help=PAIRED_HELP)
    p.add_argument("--capacity", default="auto", choices=["auto", "fixed"],
                   help="auto (default): widen the probe where a boundary l = dL is not "
                   "recovered (docs/method.md §2.6); fixed: one width")
    sub.add_parser("profile", help="the per-layer spectral profile: rho(l) of every "
                   "interaction layer's features at one d, beside d x L_layer",
                   parents=[p, *shared.backbone_run("default runs/profile-d<d>-seed<seed>")])


def _survey_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--data", default="aspirin")
    p.add_argument("--models", nargs="+", default=None, metavar="SPEC",
                   help="these models instead of the default ones (the shipped backbones "
                   "and every adapter's pretrained model available here); --extra adds to them")
    p.add_argument("--extra", nargs="+", default=[], metavar="SPEC",
                   help="more models after the default ones (or after --models), e.g. "
                   "nequip:runs/.../best.ckpt mace:runs/mace-aspirin/aspirin.model (with "
                   "--trust-checkpoints)")
    p.add_argument("--degrees", nargs="+", type=_positive(int, "--degrees"), default=[1, 2, 3])
    p.add_argument("--frames", type=_bounded_int("--frames", 2, _DATA, "MAX_FRAMES"),
                   default=None, help="seeded subset of frames (default: all)")
    p.add_argument("--n-boot", type=_at_least("--n-boot", _DIAGNOSTIC, "MIN_N_BOOT"), default=1000)
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--paired", action="store_true", help=PAIRED_HELP)
    p.add_argument("--capacity", default="auto", choices=["auto", "fixed"],
                   help="auto (default): widen the probe where a boundary l = dL is not "
                   "recovered (docs/method.md §2.6); fixed: one width")
    sub.add_parser("survey", help="diagnose every model available here (shipped, "
                   "SevenNet's pretrained, and any given) at d = 1, 2, 3",
                   parents=[p, *shared.backbone_run("default runs/survey-seed<seed>")])


def _sweep_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("config", type=Path, help="the sweep's TOML file (docs/method.md §2.11; "
                   "examples/sweep/aspirin.toml)")
    p.add_argument("--frames", type=_positive(int, "--frames"), default=None,
                   help="seeded subset of frames (overrides the file's frames)")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default: the file's out, else runs/sweep-<name>)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--store", type=_cache_path, default=None, metavar="DIR",
                       help="the store of finished tasks, the feature cache every command "
                       "shares (default: the file's store, else the cache's default place, "
                       "as for diagnose --cache); finished tasks there are not rerun")
    where.add_argument("--cache", type=_cache_path, default=None, metavar="DIR", dest="store",
                       help="the same as --store")
    where.add_argument("--no-cache", action="store_true",
                       help="keep this sweep's tasks in a store of its own, OUT.store, "
                       "apart from the shared cache")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://127.0.0.1:8786 (default: a "
                   "local cluster started and stopped here)")
    p.add_argument("--workers", type=_positive(int, "--workers"), default=None,
                   help="worker processes of the local cluster (default: the cores)")
    p.add_argument("--paired", action="store_true",
                   help="every group shares the seed's draws (for contrasts between groups; "
                   "the file's paired = true does the same); default: each group its own, "
                   "drawn from the seed and the group's name")
    sub.add_parser("sweep", help="many backbone groups x datasets x marked pairs x "
                   "degrees on Dask (local processes or a cluster), resumable",
                   parents=[p, shared.checkpoints, shared.overwrite, shared.no_plots,
                            shared.no_progress])


def _c5_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--L", nargs="+", type=_bounded_int("--L", 1, _BACKBONE, "MAX_L"),
                   default=[1, 2, 3], dest="Ls")
    p.add_argument("--degrees", nargs="+", type=_positive(int, "--degrees"), default=[1, 2, 3])
    p.add_argument("--lmax", type=_bounded_int("--lmax", 0, _DIAGNOSTIC, "MAX_LMAX"), default=7)
    p.add_argument("--structures", type=_bounded_int("--structures", 20, _CALIBRATION, "MAX_STRUCTURES"),
                   default=6000)
    p.add_argument("--sources", nargs="+", choices=["ideal", "random", "trained"],
                   default=["ideal", "random", "trained"])
    p.add_argument("--channels", type=_bounded_int("--channels", 1, _BACKBONE, "MAX_CHANNELS"),
                   default=32)
    p.add_argument("--train-epochs", type=_bounded_int("--train-epochs", 1, _CALIBRATION,
                                                       "MAX_TRAIN_EPOCHS"), default=20)
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    sub.add_parser("c5", help="the synthetic C5 calibration (axis and ring probes, ideal, "
                   "random and briefly trained features, L = 1, 2, 3, d = 1, 2, 3)",
                   parents=[p, *shared.run("default runs/c5-seed<seed>")])


def _controls_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--data", default="aspirin")
    p.add_argument("--frames", type=_bounded_int("--frames", 20, _DATA, "MAX_FRAMES"),
                   default=2500,
                   help="use a seeded subset of this many frames (default 2500, the CPU "
                   "budget; the shipped aspirin has 5000)")
    p.add_argument("--n-boot", type=_at_least("--n-boot", _DIAGNOSTIC, "MIN_N_BOOT"), default=500)
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--kinds", nargs="+", default=None,
                   choices=["capacity", "parameters", "activation", "architecture", "untrained"])
    sub.add_parser("controls", help="the controls of docs/method.md §4 (capacity, parameters, "
                   "activation, architecture, untrained) on the shipped aspirin",
                   parents=[p, shared.cache, shared.rotate,
                            *shared.run("default runs/controls-seed<seed>", plots=False)])


def _compare_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--c5", type=Path, required=True, help="C5 run folder or its results.json")
    p.add_argument("--aspirin", type=Path, required=True,
                   help="diagnose run folder or its results.json")
    p.add_argument("--out", type=Path, required=True)
    sub.add_parser("compare", help="C5 calibration vs aspirin: overlay per d, table, "
                   "paragraph", parents=[p, shared.overwrite])


def _reproduce_parser(sub, shared: _Shared) -> None:
    p = _options()
    p.add_argument("--preset", choices=["quick", "full"], default="quick",
                   help="quick: shipped backbones on CPU; full: retrain every backbone first (GPU)")
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="default runs/reproduce-<preset>; a rerun into the same folder keeps "
                   "the steps an earlier run finished")
    p.add_argument("--overwrite", action="store_true",
                   help="recompute every step, replacing an earlier run's folder")
    sub.add_parser("reproduce", help="c5 + diagnose + controls + compare in one folder",
                   parents=[p, shared.threads, shared.no_progress])


def _backbones_parser(sub, shared: _Shared) -> None:
    p = sub.add_parser("backbones", help="list the shipped backbones")
    p.add_argument("--role", choices=["diagnostic", "control"], default=None,
                   help="only the four diagnose backbones, or only the controls' (default all)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--plot", type=Path, default=None,
                   help="also write their learning curves to this PNG")


def _cache_parser(sub, shared: _Shared) -> None:
    cache = sub.add_parser("cache", help="the feature cache: what it holds, or clear it")
    csub = cache.add_subparsers(dest="cache_command", parser_class=_Parser, metavar="ACTION")
    csub.required = True
    p = _options()
    p.add_argument("--cache", type=_cache_path, default=None, metavar="DIR",
                   help="the cache directory (default as for diagnose --cache)")
    info = csub.add_parser("info", help="where the cache is, its entries and bytes per kind, "
                           "its size cap", parents=[p])
    info.add_argument("--json", action="store_true")
    csub.add_parser("clear", help="remove every entry this tool wrote (nothing else)",
                    parents=[p])


def _open_existing_cache(args):
    """``(root, TaskStore or None)``: the cache ``--cache`` names, read as it is (never
    created); ``BadInput`` for a folder that is not one."""
    from .cache import MARKER, TaskStore

    root = _cache_dir(args)
    if root is None:
        raise BadInput("the feature cache is switched off (SPECTRAL_CEILINGS_CACHE=off); "
                       "give --cache DIR")
    if not root.exists():
        return root, None
    if not root.is_dir():
        raise BadInput(f"--cache {root}: not a directory")
    if not (root / MARKER).is_file():
        if any(root.iterdir()):
            raise BadInput(f"--cache {root}: not a spectral-ceilings cache (no {MARKER} "
                           "file); nothing there is touched")
        return root, None
    return root, TaskStore(root, readonly=True)


def _cmd_cache(args) -> int:
    import json
    import time as _time

    from .cache import KINDS, max_bytes_from_env

    root, store = _open_existing_cache(args)
    if args.cache_command == "clear":
        if store is None:
            print(f"{root}: no cache there; nothing to clear")
            return EXIT_OK
        removed, freed = store.clear()
        print(f"{root}: removed {removed} entries ({freed / 2 ** 20:.1f} MiB)")
        if store.failed:
            path, why = store.failed[0]
            raise BadInput(f"{len(store.failed)} entries could not be removed (the first, "
                           f"{path}: {why})")
        return EXIT_OK

    try:
        cap = max_bytes_from_env()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    info = store.info() if store is not None else None
    payload = {"directory": str(root), "exists": store is not None, "max_bytes": cap,
               "entries": info.entries if info else {k: 0 for k in KINDS},
               "bytes": info.bytes if info else {k: 0 for k in KINDS},
               "oldest_use": info.oldest_use if info else None,
               "newest_use": info.newest_use if info else None}
    if args.json:
        print(json.dumps(payload, indent=1))
        return EXIT_OK
    total = sum(payload["bytes"].values())
    print(f"{root}{'' if store is not None else ' (not created yet)'}")
    for kind in KINDS:
        print(f"  {kind:<13} {payload['entries'].get(kind, 0):>7} entries  "
              f"{payload['bytes'].get(kind, 0) / 2 ** 20:>9.1f} MiB")
    print(f"  {'total':<13} {sum(payload['entries'].values()):>7} entries  "
          f"{total / 2 ** 20:>9.1f} MiB of at most {cap / 2 ** 30:.1f} GiB")
    if info and info.oldest_use is not None:
        fmt = "%Y-%m-%d %H:%M"
        print(f"  used from {_time.strftime(fmt, _time.localtime(info.oldest_use))} to "
              f"{_time.strftime(fmt, _time.localtime(info.newest_use))}")
    return EXIT_OK


def _cmd_train(args) -> int:
    import torch

    from .backbone import BackboneConfig, TrainSettings, train
    from .data import load

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"--device {args.device}: CUDA is not available on this machine")
    from .io import check_train_dir

    try:   # a new or empty directory, or (--resume) one holding only its checkpoints
        check_train_dir(args.out, args.resume, inputs=[args.data])
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    dataset = load(args.data)
    config = BackboneConfig(L=args.L, channels=args.channels, layers=args.layers,
                            r_max=args.r_max, activation=args.activation,
                            species=sorted(set(int(z) for z in dataset.numbers)))
    # the options given; TrainSettings' own defaults for the rest
    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)
                                if getattr(args, f.name, None) is not None})
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    meta = train(dataset, args.out, config, seed=args.seed, settings=settings, dtype=dtype,
                 device=args.device, resume=args.resume, progress=not args.no_progress)
    test = meta["test"]
    print(f"{args.out / 'backbone.pt'}: test energy MAE {test['energy_mae_meV']:.2f} meV, "
          f"force MAE {test['force_mae_meV_per_A']:.2f} meV/A ({meta['status']})")
    return EXIT_OK


def _run_setup(args, default_out: Path, inputs=()) -> Path:
    """Shared start of the run commands, before any work: torch threads (``--threads``,
    default all cores) and the output directory (``--out`` or ``default_out``), which must
    be writable, hold no files unless ``--overwrite`` (and then only files an earlier run
    of this tool wrote, per its manifest), and neither be nor hold any of
    ``inputs`` (the paths the run reads; :func:`empirical.io.check_output_dir`)."""
    import torch

    from .io import check_output_dir

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    out = args.out or default_out
    try:
        check_output_dir(out, overwrite=getattr(args, "overwrite", False), inputs=inputs)
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    return out


def _run_inputs(args) -> list:
    """What a run command reads from disk: ``--data`` and every backbone or model spec."""
    return [getattr(args, "data", None), *(getattr(args, "backbones", None) or ()),
            *(getattr(args, "models", None) or ()), *(getattr(args, "extra", None) or ())]


def _status_words(status) -> str:
    """A degree status as the run commands print it (docs/method.md §2.8)."""
    from .diagnostic import STATUS_WORDS
    return STATUS_WORDS.get(status, str(status))


def _verdict(headline) -> str:
    """``ceiling P (measured M)  verdict`` of a row's degree headline."""
    return (f"ceiling {headline.predicted_ceiling} (measured {headline.measured_ceiling})  "
            f"{_status_words(headline.status)}")


def _wrote(result, out: Path, plot: Optional[str]) -> None:
    """The last line of a run command: its wall time and the files it wrote."""
    print(f"{result.seconds:.0f} s; wrote {out}/results.json, report.md"
          + ("" if plot is None else f", {plot}"))


def _progress(args):
    """``None`` (a bar when stderr is a terminal) unless ``--no-progress``."""
    return False if args.no_progress else None


def _cache_source(args) -> str:
    """What named the cache directory, for a message: ``--cache DIR``, the variable, or
    the default place."""
    import os

    from .cache import ENV_DIR

    if getattr(args, "cache", None) is not None:
        return f"--cache {args.cache}"
    if os.environ.get(ENV_DIR, "").strip():
        return f"{ENV_DIR}={os.environ[ENV_DIR].strip()}"
    return "the default cache directory"


def _cache_dir(args) -> Optional[Path]:
    """The cache directory ``--cache``/``--no-cache`` name (``None``: none)."""
    from .cache import resolve_cache_dir

    if getattr(args, "no_cache", False):
        return None
    try:
        return resolve_cache_dir(getattr(args, "cache", None))
    except (RuntimeError, ValueError) as exc:   # no home directory; an empty path
        raise BadInput(f"{_cache_source(args)}: {exc}; give --cache DIR or --no-cache") \
            from None


def _cache_option(args, out: Path):
    """The ``cache`` argument of a run command: ``False`` (none) or an opened
    :class:`~empirical.cache.FeatureCache`; ``BadInput`` for a directory that overlaps the
    output (replaced as a whole) or is not a cache (a folder of other files)."""
    from spanthm.io import contains, resolve_out

    from .cache import FeatureCache

    from .cache import max_bytes_from_env

    root = _cache_dir(args)
    if root is None:
        return False
    try:
        cap = max_bytes_from_env()
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    where = _cache_source(args)
    try:
        real_out, real_cache = resolve_out(out), resolve_out(root)
    except (OSError, RuntimeError, ValueError) as exc:
        raise BadInput(f"{where}: {exc}") from None
    if contains(real_out, real_cache) or contains(real_cache, real_out):
        raise BadInput(f"{where} and --out {out} overlap (one is or lies inside the "
                       "other): the output directory is replaced as a whole")
    try:
        return FeatureCache(root, max_bytes=cap)
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}") from None


def _cmd_diagnose(args) -> int:
    from .diagnostic import diagnose

    stem = Path(str(args.data)).stem if str(args.data) != "aspirin" else "aspirin"
    out = _run_setup(args, Path("runs") / f"diagnose-{stem}-seed{args.seed}", _run_inputs(args))
    result = diagnose(backbones=args.backbones, dataset=args.data, marked=args.marked,
                      degrees=args.degrees, lmax=args.lmax, seed=args.seed, k=args.k,
                      reduction=args.reduction, spn=args.spn, n_boot=args.n_boot,
                      frames=args.frames, test_fraction=args.test_fraction, eps=args.eps,
                      k_sweep=args.k_sweep, rotations_per_config=args.rotations,
                      capacity=args.capacity,
                      trust_checkpoints=args.trust_checkpoints, device=args.device,
                      progress=_progress(args), cache=_cache_option(args, out),
                      rotate=args.rotate)
    result.save(out, plots=not args.no_plots, overwrite=args.overwrite)
    print(f"{len(result.backbones)} backbone(s), {result.config['n_test']} held-out "
          f"rotated configurations, {result.seconds:.0f} s")
    for d, s in sorted(result.summaries.items()):
        rho = "  ".join(f"{l}:{'  -  ' if v is None else f'{v:+.2f}'}" for l, v in sorted(s.rho.items()))
        verdict = _status_words(s.status)
        print(f"d={d}  ceiling {s.ceiling} (measured {s.measured_ceiling})  rho  {rho}  "
              f"{verdict}")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {out}/results.json, report.md" + ("" if args.no_plots else ", plots"))
    return EXIT_OK


def _cmd_profile(args) -> int:
    from .survey import profile

    out = _run_setup(args, Path("runs") / f"profile-d{args.d}-seed{args.seed}",
                     _run_inputs(args))
    result = profile(backbones=args.backbones, dataset=args.data, d=args.d, lmax=args.lmax,
                     frames=args.frames, seed=args.seed, n_boot=args.n_boot,
                     trust_checkpoints=args.trust_checkpoints, device=args.device,
                     progress=_progress(args), paired=args.paired,
                     capacity=args.capacity, cache=_cache_option(args, out),
                     rotate=args.rotate)
    result.save(out, plots=not args.no_plots, overwrite=args.overwrite)
    for r in result.rows:
        print(f"{r.backbone:<20} {r.layer:<24} L={r.headline.L}  {_verdict(r.headline)}")
    _wrote(result, out, None if args.no_plots else "profile.png")
    return EXIT_OK


def _cmd_survey(args) -> int:
    from .survey import survey

    out = _run_setup(args, Path("runs") / f"survey-seed{args.seed}", _run_inputs(args))
    result = survey(models=args.models, extra=args.extra, dataset=args.data,
                    degrees=args.degrees, frames=args.frames, seed=args.seed,
                    n_boot=args.n_boot, trust_checkpoints=args.trust_checkpoints,
                    device=args.device, progress=_progress(args), paired=args.paired,
                    capacity=args.capacity, cache=_cache_option(args, out),
                    rotate=args.rotate)
    result.save(out, plots=not args.no_plots, overwrite=args.overwrite)
    for r in result.rows:
        print(f"{r.model:<24} d={r.headline.d}  {_verdict(r.headline)}")
    _wrote(result, out, None if args.no_plots else "survey.png")
    return EXIT_OK


def _cmd_sweep(args) -> int:
    from spanthm.io import contains, resolve_out

    from .io import check_inputs, check_output_dir
    from .sweep import default_store, load_config, sweep

    config = load_config(args.config).with_frames(args.frames).with_paired(args.paired)
    out = args.out or config.out or Path("runs") / f"sweep-{args.config.stem}"
    store = args.store or config.store or (None if args.no_cache else _cache_dir(args))
    if store is None:
        store = default_store(
            out if Path(out).name not in ("", "..") else resolve_out(out))   # "." -> sibling
    inputs = [args.config, *config.datasets,
              *(spec for group in config.groups for spec in group.backbones)]
    # the store is read and written by the run: never the output, in it, or around it
    real_out, real_store = resolve_out(out), resolve_out(store)
    if contains(real_out, real_store) or contains(real_store, real_out):
        raise BadInput(f"--store {store} and --out {out} overlap (one is or lies inside the "
                       "other): the output directory is replaced as a whole, so the store "
                       "lives beside it (the default is OUT.store)")
    try:
        check_inputs(store, [args.config, *config.datasets], what="--store")
    except ValueError as exc:
        raise BadInput(f"--store: {exc}") from None
    try:
        check_output_dir(out, overwrite=args.overwrite, inputs=inputs)
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    try:
        result = sweep(config, store=store, scheduler=args.scheduler, workers=args.workers,
                       progress=_progress(args), trust_checkpoints=args.trust_checkpoints,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print(f"\nempirical: interrupted; no results were written, and the finished tasks "
              f"are kept in {store}: the same command resumes", file=sys.stderr)
        return EXIT_INTERRUPTED
    result.save(out, plots=not args.no_plots, overwrite=args.overwrite)
    for r in result.rows:
        print(f"{r.group:<28} {r.dataset:<10} d={r.headline.d}  {_verdict(r.headline)}")
    t = result.timings
    print(f"{t['seconds']:.0f} s on {t['cluster']}; tasks computed {sum(t['computed'].values())}, "
          f"from the store {sum(t['from_store'].values())} ({store})")
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"wrote {out}/results.json, report.md, timings.json"
          + ("" if args.no_plots else ", sweep.png"))
    return EXIT_OK


def _cmd_c5(args) -> int:
    from .calibration import run_c5

    out = _run_setup(args, Path("runs") / f"c5-seed{args.seed}")
    result = run_c5(Ls=args.Ls, degrees=args.degrees, lmax=args.lmax, n=args.structures,
                    seed=args.seed, sources=args.sources, channels=args.channels,
                    train_epochs=args.train_epochs,
                    progress=_progress(args))
    result.save(out, plots=not args.no_plots, overwrite=args.overwrite)
    for source, s in result.summary.items():
        print(f"{source:8s} {s.agree}/{s.cells} cells agree with spanthm, "
              f"{s.meet_bar} meet the calibration bar")
    _wrote(result, out, None if args.no_plots else "c5_heatmap.png")
    return EXIT_OK


def _cmd_controls(args) -> int:
    from .controls import KINDS, run_controls

    out = _run_setup(args, Path("runs") / f"controls-seed{args.seed}", _run_inputs(args))
    result = run_controls(dataset=args.data, frames=args.frames, n_boot=args.n_boot,
                          seed=args.seed, kinds=tuple(args.kinds or KINDS),
                          progress=_progress(args), cache=_cache_option(args, out),
                          rotate=args.rotate)
    result.save(out, overwrite=args.overwrite)
    for c in result.controls:
        if c.status == "missing":
            print(f"{c.name:<22} d={c.d}  missing backbone {c.backbone}")
        else:
            print(f"{c.name:<22} d={c.d}  measured ceiling {c.measured_ceiling}, "
                  f"predicted {c.predicted_ceiling} ({'matches' if c.agrees else 'DIFFERS'})  "
                  f"{_status_words(c.verdict)}")
    _wrote(result, out, None)
    return EXIT_OK


def _read_results(path: Path, what: str, validate=None) -> tuple:
    """``path`` (a results.json or the folder holding one) read and, with ``validate``,
    checked; ``BadInput`` naming ``--what`` and the file otherwise. Returns the payload and
    the file."""
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise BadInput(f"--{what} {path}: no results.json there")
    from .io import read_json

    try:
        payload = read_json(file)
    except (OSError, ValueError) as exc:
        raise BadInput(f"--{what} {file}: not a readable results.json ({exc})") from None
    if validate is not None:
        try:
            validate(payload)
        except ValueError as exc:
            raise BadInput(f"--{what} {file}: not the results of empirical "
                           f"{'c5' if what == 'c5' else 'diagnose'}: {exc}") from None
    return payload, file


def _cmd_compare(args) -> int:
    from .calibration import compare, write_compare_outputs

    from .io import check_output_dir

    try:
        check_output_dir(args.out, overwrite=args.overwrite, inputs=[args.c5, args.aspirin])
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    from .calibration import validate_c5_results, validate_diagnose_results

    c5, c5_file = _read_results(args.c5, "c5", validate_c5_results)
    aspirin, aspirin_file = _read_results(args.aspirin, "aspirin", validate_diagnose_results)
    try:
        cmp = compare(c5, aspirin)
    except ValueError as exc:      # both files are valid: they do not fit together
        raise BadInput(f"--c5 {c5_file} and --aspirin {aspirin_file}: {exc}") from None
    write_compare_outputs(cmp, args.out, overwrite=args.overwrite,
                          inputs=[args.c5, args.aspirin])
    print(cmp["paragraph"])
    print(f"wrote {args.out}/compare.md, compare.json, compare_d*.png")
    return EXIT_OK


def _cmd_reproduce(args) -> int:
    import torch

    from .reproduce import STEPS, check_reproduce_dir, reproduce

    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    out = args.out or Path("runs") / f"reproduce-{args.preset}"
    try:   # a new folder or one an earlier reproduction wrote (resumed), nothing else
        check_reproduce_dir(out)
    except ValueError as exc:
        raise BadInput(f"--out: {exc}") from None
    try:
        index = reproduce(args.preset, out, seed=args.seed, overwrite=args.overwrite,
                          progress=_progress(args),
                          log=lambda s: print(s, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        done = [f"{s}/" for s in STEPS if (out / s / "results.json").is_file()]
        print("\nempirical: interrupted; " + (
            f"finished steps kept in {out}: {', '.join(done)} (a rerun resumes after them)"
            if done else "nothing was written"), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(index["paragraph"])
    print(f"{index['seconds']:.0f} s; wrote {out}/README.md")
    return EXIT_OK


def _cmd_backbones(args) -> int:
    from .backbone import shipped

    plot = None
    if args.plot is not None:   # checked first: one line naming what was typed
        from .io import check_output_file, is_png

        plot = check_output_file(args.plot, overwrite=True, ours=is_png, what="--plot")
    rows = shipped(role=args.role)
    if plot is not None:
        from .backbone import plot_learning_curves

        plot_learning_curves([r["path"] for r in rows], plot)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no shipped backbones")
        return EXIT_OK
    print(f"{'name':<22} {'role':<10} {'L':>2} {'ch':>4} {'act':>5} {'seed':>4} {'train':>6} "
          f"{'E MAE [meV]':>12} {'F MAE [meV/A]':>14} {'epochs':>6}  path")
    for r in rows:
        print(f"{r['name']:<22} {r['role']:<10} {r['L']:>2} {r['channels']!s:>4} "
              f"{r['activation']!s:>5} {r['seed']:>4} {r['training_frames']!s:>6} "
              f"{r['energy_mae_meV'] or float('nan'):>12.2f} "
              f"{r['force_mae_meV_per_A'] or float('nan'):>14.2f} {r['epochs']!s:>6}  {r['path']}")
    return EXIT_OK


def _cmd_aspirin(args) -> int:
    from .data import MDSettings, generate_aspirin, save_npz
    from .data import check_request

    settings = MDSettings(temperature_K=args.temperature, timestep_fs=args.timestep_fs,
                          spacing_fs=args.spacing_fs, equilibration_ps=args.equilibration_ps,
                          friction_per_fs=args.friction)
    check_request(args.frames, args.chains, settings)     # the MD's size, before any work
    from .io import check_output_file, is_generated_dataset

    out = args.out or Path(f"aspirin_gfn2xtb_{args.temperature:g}K.npz")
    # before the MD: a writable place, never over a file this command did not write
    real = check_output_file(out, overwrite=args.overwrite, ours=is_generated_dataset)
    try:
        import ase  # noqa: F401
        import tblite  # noqa: F401
    except ImportError as exc:
        raise BadInput(f"generation needs ase and tblite ({exc.name} is missing): "
                       "pip install 'spectral-ceilings[data]'") from None
    dataset = generate_aspirin(frames=args.frames, seed=args.seed, settings=settings,
                               chains=args.chains, progress=not args.no_progress)
    save_npz(dataset, real)
    meta = dataset.metadata
    size = out.stat().st_size
    print(f"wrote {out}: {dataset.n_frames} frames, {size / 1e6:.2f} MB, mean kinetic "
          f"temperature {meta['mean_kinetic_temperature_K']:.1f} K, "
          f"{meta['ms_per_md_step']:.1f} ms per MD step, "
          f"{meta['generation_seconds'] / 60:.1f} min in all")
    return EXIT_OK


def _cmd_info(args) -> int:
    from .data import load, summary

    info = summary(load(args.source))
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    est = info["temperature_estimate_K"]
    lines = [
        f"source       : {info['source']} ({info['format']})",
        f"frames       : {info['frames']}",
        f"atoms        : {info['atoms']}  formula {info['formula']}",
        f"energy [eV]  : {info['energy_min_eV']:.6f} .. {info['energy_max_eV']:.6f} "
        f"(range {info['energy_max_eV'] - info['energy_min_eV']:.4f}, std {info['energy_std_eV']:.4f})",
        f"force RMS    : {info['force_rms_eV_per_A']:.4f} eV/A",
        "temperature  : " + (f"{est:.0f} K estimated ({info['temperature_estimate_method']})"
                             if est is not None else "no estimate (one atom or one frame)"),
    ]
    if info["temperature_metadata_K"] is not None:
        lines.append(f"               {info['temperature_metadata_K']:.0f} K thermostat target, "
                     f"{info['mean_kinetic_temperature_K']:.1f} K measured kinetic (metadata)")
    if info["marked_bond"]:
        mb = info["marked_bond"]
        lines.append(f"marked bond  : {mb['name']}: atoms {mb['atoms']} ({'-'.join(mb['labels'])})")
    print("\n".join(lines))
    return EXIT_OK


COMMANDS = {"cache": _cmd_cache, "train": _cmd_train, "backbones": _cmd_backbones, "diagnose": _cmd_diagnose,
            "profile": _cmd_profile, "survey": _cmd_survey, "sweep": _cmd_sweep, "c5": _cmd_c5,
            "controls": _cmd_controls, "compare": _cmd_compare, "reproduce": _cmd_reproduce}
DATA_COMMANDS = {"aspirin": _cmd_aspirin, "info": _cmd_info}


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``empirical`` console script; returns the exit code. An
    interrupt anywhere, the first imports included, ends in one line and exit 130."""
    # One OpenMP thread unless told otherwise: tblite's threaded reductions would make the
    # MD differ in the last digits from run to run (set before tblite is imported).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from ._malloc import tune_malloc

    tune_malloc()     # glibc's allocator set for torch on the CPU (empirical/_malloc.py)
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\nempirical: interrupted; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _main(argv: Optional[List[str]]) -> int:
    from .backbone import CheckpointError
    from .data import DataError, GenerationError

    try:
        args = build_parser().parse_args(argv)
        if args.command == "data":
            return DATA_COMMANDS[args.data_command](args)
        return COMMANDS[args.command](args)
    except GenerationError as exc:
        print(f"empirical: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (BadInput, DataError, CheckpointError, ValueError) as exc:
        print(f"empirical: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:            # unwritable output, a full disk, a vanished file
        print(f"empirical: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
