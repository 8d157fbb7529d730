"""``spanthm`` command line: a thin layer over the library API.

Exit codes: 0 success; 1 a check failed (the theorem fails, methods disagree, a certificate
does not verify); 2 bad input (one line on stderr naming the problem, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

from . import _limits, _validate

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(Exception):
    """Raised for command-line input errors (exit code 2)."""


#: Longest message line printed; user values inside are quoted shorter (``_validate.short``).
MAX_MESSAGE = 400
#: Failed claims listed per certificate by ``verify`` (the rest are counted).
MAX_PROBLEMS = 20

#: Options that take a value: ``--features -1,2`` hands argparse ``-1,2`` as that value
#: (argparse alone takes it for an option and says "expected one argument").
_VALUE_OPTIONS = ("--L", "--d", "--features", "--Lmax", "--dmax", "--seed", "--power",
                  "--method")


def _one_line(message: str) -> str:
    """``message`` on one line (newlines escaped), cut to ``MAX_MESSAGE`` characters."""
    text = str(message).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > MAX_MESSAGE:
        text = f"{text[:MAX_MESSAGE]}... ({len(text)} characters)"
    return text


def _attach_dash_values(argv: List[str]) -> List[str]:
    """``--features -1,2`` -> ``--features=-1,2`` (same for every option in
    ``_VALUE_OPTIONS``), so that a value starting with ``-`` reaches its own validation."""
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        if (token in _VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-")
                and not argv[i + 1].startswith("--") and argv[i + 1] not in ("-", "-h")):
            out.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        if token == "--":
            out.extend(argv[i:])
            break
        out.append(token)
        i += 1
    return out


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise BadInput(_one_line(message))


def int_at_least(name: str, low: int):
    """An argparse ``type``: a base-10 integer ``>= low``; otherwise an error naming the
    option ``name`` and the value (quoted short, :func:`spanthm._validate.short`), e.g.
    ``--d must be an integer >= 1, got 0`` (``low = 0``: ``a non-negative integer``).
    Shared by the ``spanthm`` and ``empirical`` commands."""
    wanted = "a non-negative integer" if low == 0 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be {wanted}, got {_validate.short(text)}") from None
        if value < low:
            raise argparse.ArgumentTypeError(
                f"{name} must be {wanted}, got {_validate.short(value)}")
        return value
    return parse


def _features_arg(text: str):
    try:
        return _validate.parse_feature_list(text)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_instance(p: argparse.ArgumentParser, required: bool = True) -> None:
    group = p.add_mutually_exclusive_group(required=required)
    group.add_argument("--L", type=int_at_least("--L", 0), help="features S = {0, 1, ..., L}")
    group.add_argument("--features", type=_features_arg, metavar="K,K,...",
                       help="feature degrees, comma-separated, e.g. 0,1,2 or 2")
    p.add_argument("--d", type=int_at_least("--d", 1), required=required, help="probe degree d >= 1")


def _features(args) -> tuple:
    if args.features is not None:
        return args.features
    # priced by what the command runs, before {0..L} is built
    method = {"multiplicities": "weights", "certify": "certificate"}.get(
        args.command, getattr(args, "method", "exact"))
    _limits.check_instance(args.L, args.d, method, getattr(args, "exactly", False))
    return tuple(range(args.L + 1))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spanthm", description="Exact, certified checks of the finite-degree "
                     "span theorem (docs/method.md §1).")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"spanthm {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("check", help="spectrum of P_d(S), ceiling and the theorem's verdict")
    _add_instance(p)
    p.add_argument("--exactly", action="store_true", help="products of exactly d features")
    p.add_argument("--method", default="exact", choices=_validate.METHODS,
                   help="exact (default), rules, weights, numeric, brute or all")
    p.add_argument("--seed", type=int_at_least("--seed", 0), default=0,
                   help="seed of the numeric method's random samples (default 0)")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("multiplicities", help="abstract multiplicities in Sym^d or the tensor power")
    _add_instance(p)
    p.add_argument("--power", default="sym", choices=_validate.POWERS)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("table", help="one row per instance S = {0..L}, d")
    p.add_argument("--Lmax", type=int_at_least("--Lmax", 1), default=4)
    p.add_argument("--dmax", type=int_at_least("--dmax", 1), default=4)
    p.add_argument("--method", default="exact", choices=_validate.METHODS)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("certify", help="write JSON certificates")
    _add_instance(p, required=False)
    p.add_argument("--exactly", action="store_true")
    p.add_argument("--out", type=Path, help="certificate file (default: print to stdout)")
    p.add_argument("--Lmax", type=int_at_least("--Lmax", 1),
                   help="certify every S = {0..L}, L <= Lmax (with --dmax, --out-dir)")
    p.add_argument("--dmax", type=int_at_least("--dmax", 1))
    p.add_argument("--out-dir", type=Path, help="directory for --Lmax/--dmax certificates "
                   "(written as one set with a manifest; must be new or empty)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an --out-dir that this command wrote (every file vouched for "
                   "by its manifest), or an --out file that is a certificate; nothing else")

    p = sub.add_parser("verify", help="re-check certificates with the independent checker")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return parser


def _cmd_check(args) -> int:
    from ._spectrum import spectrum

    res = spectrum(_features(args), args.d, exactly=args.exactly, method=args.method,
                   seed=args.seed)
    if args.json:
        print(json.dumps(res.to_dict(), indent=2))
    else:
        kind = "P_=d" if res.exactly else "P_d"
        print(f"{kind}(S), S = {{{', '.join(map(str, res.features))}}}, d = {res.d}")
        print(f"  degrees present : {res.degrees}")
        absent = [l for l, n in res.dims.items() if not n]
        print(f"  degrees absent  : {absent} (checked up to {max(res.dims)})")
        print(f"  ceiling         : {res.ceiling}")
        print(f"  boundary mult.  : {res.boundary_multiplicity} (V_{res.ceiling} in the "
              f"abstract symmetric power)")
        print(f"  theorem         : {res.theorem}")
        print("  methods         : " + ", ".join(f"{k} {v}" for k, v in res.methods.items()))
        num = res.details.get("numeric")
        if num is not None:
            kept = [min(v) for l, v in num.singular_values.items() if num.dims[l]]
            dropped = [max(v) for l, v in num.singular_values.items() if not num.dims[l]]
            print(f"  numeric         : singular values relative to the largest: smallest kept "
                  f"{min(kept) / num.scale:.2e}, largest dropped "
                  f"{(max(dropped) / num.scale if dropped else 0.0):.2e} (threshold {num.tol:.0e})")
        print(f"  time            : {res.seconds:.3f} s")
    failed = res.theorem == "fails" or not res.agree
    if not res.agree:
        bad = [k for k, v in res.methods.items() if v != "agree"]
        print(f"spanthm: methods disagree: {', '.join(bad)}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_multiplicities(args) -> int:
    from ._multiplicities import multiplicities, o3_multiplicities

    feats = _features(args)
    mult = multiplicities(feats, args.d, args.power)
    o3 = o3_multiplicities(feats, args.d, args.power)
    if args.json:
        print(json.dumps({
            "features": list(feats), "d": args.d, "power": args.power,
            "multiplicities": {str(l): m for l, m in mult.items()},
            "o3": {f"{l}{p}": m for (l, p), m in sorted(o3.items())},
        }, indent=2))
    else:
        name = "Sym^" if args.power == "sym" else "tensor power "
        space = " + ".join(f"V_{k}" for k in feats)
        terms = " + ".join((f"{m} V_{l}" if m > 1 else f"V_{l}") for l, m in mult.items())
        print(f"{name}{args.d}({space}) = {terms}")
        print("O(3), natural parity (-1)^k on V_k: "
              + " + ".join((f"{m} {l}{p}" if m > 1 else f"{l}{p}")
                           for (l, p), m in sorted(o3.items())))
    return EXIT_OK


def _cmd_table(args) -> int:
    from ._spectrum import table

    rows, failed = [], False
    instances = table(args.Lmax, args.dmax, method=args.method)   # limits checked here
    if not args.json:
        print(f"{'L':>3} {'d':>3} {'ceiling':>8} {'theorem':>8} {'mult(V_dL)':>10} "
              f"{'methods':>9} {'time [s]':>9}")
    start = time.perf_counter()
    for res in instances:
        L, d = max(res.features), res.d
        row = {"L": L, "d": d, "ceiling": res.ceiling, "theorem": res.theorem,
               "boundary_multiplicity": res.boundary_multiplicity,
               "methods": res.methods, "seconds": round(res.seconds, 6)}
        rows.append(row)
        failed |= res.theorem != "holds" or not res.agree
        if not args.json:
            print(f"{L:>3} {d:>3} {res.ceiling:>8} {res.theorem:>8} "
                  f"{res.boundary_multiplicity!s:>10} "
                  f"{'agree' if res.agree else 'DISAGREE':>9} {res.seconds:>9.4f}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{len(rows)} instances, method {args.method}, "
              f"{time.perf_counter() - start:.2f} s in all")
    return EXIT_FAILED if failed else EXIT_OK


#: A file that ``certify --out --overwrite`` may replace: a JSON certificate (at most this
#: size, the verifier's own bound) whose ``schema`` is ours.
CERTIFICATE_SCHEMA_PREFIX = "spanthm-certificate/"


def _is_certificate(path: Path) -> bool:
    """Whether ``path`` holds a JSON certificate of ours (bounded read, no recursion)."""
    from .verify import MAX_BYTES, MAX_DEPTH, json_depth

    with open(path, "rb") as handle:
        raw = handle.read(MAX_BYTES + 1)
    try:
        text = raw.decode("utf-8")
        if len(raw) > MAX_BYTES or json_depth(text) > MAX_DEPTH:
            return False
        cert = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(cert, dict) and str(cert.get("schema", "")).startswith(
        CERTIFICATE_SCHEMA_PREFIX)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, a certificate directory: not a directory; the current
    directory or one holding it (the set is renamed into place); one that holds files
    unless ``overwrite``, and then anything its manifest does not vouch for (a file we did
    not write, or changed since); an unwritable place."""
    import os

    from .io import describe, resolve_out, unvouched, unwritable_anchor

    real = resolve_out(out)
    if real.exists() and not real.is_dir():
        raise BadInput(f"--out-dir {out} exists and is not a directory")
    if real.is_dir():
        cwd = Path(os.path.realpath(os.getcwd()))
        if cwd == real or real in cwd.parents:
            raise BadInput(f"--out-dir {out} is the current directory or contains it: the "
                           "certificates are written as one directory renamed into place; "
                           f"give a new sub-directory, e.g. {out / 'certificates'}")
        names = sorted(p.name for p in real.iterdir())
        if names and not overwrite:
            raise BadInput(f"--out-dir {out} already holds files ({describe(names)}): give "
                           "another directory, or --overwrite to replace one this command "
                           "wrote")
        foreign = unvouched(real) if names else []
        if foreign:
            raise BadInput(f"--out-dir {out} holds files this tool did not write "
                           f"({describe(foreign)}): --overwrite replaces only a directory it "
                           "wrote, as a whole; nothing was changed")
    anchor = unwritable_anchor(real)
    if anchor is not None:
        raise BadInput(f"--out-dir {out}: {anchor} is not a writable directory")


def _check_out_file(path: Path, overwrite: bool = False) -> None:
    """Refuse an output file path that cannot be written, before any work: a directory,
    an existing file (unless ``overwrite`` and it is one of our certificates), an
    unwritable directory."""
    from .io import unwritable_anchor

    if path.is_dir():
        raise BadInput(f"--out {path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise BadInput(f"--out {path} already exists: give another file name, or --overwrite "
                       "to replace a certificate")
    if path.exists() and (not path.is_file() or not _is_certificate(path)):
        raise BadInput(f"--out {path} exists and is not a spanthm certificate; it is left as "
                       "it is: give another file name")
    anchor = unwritable_anchor(path)
    if anchor is not None:
        raise BadInput(f"--out {path}: {anchor} is not a writable directory")


def _cmd_certify(args) -> int:
    from ._certificates import certificate, certificate_filename, write_certificate

    batch = args.Lmax is not None or args.dmax is not None or args.out_dir is not None
    single = args.L is not None or args.features is not None or args.d is not None
    if batch and single:
        raise BadInput("give either --L/--features with --d, or --Lmax, --dmax and --out-dir")
    if batch:
        if args.Lmax is None or args.dmax is None or args.out_dir is None:
            raise BadInput("batch certification needs --Lmax, --dmax and --out-dir")
        _limits.check_instance(args.Lmax, args.dmax, "certificate", args.exactly)
        _limits.check_total((_limits.instance_cost(L, d, "certificate", args.exactly)
                             for L in range(1, args.Lmax + 1)
                             for d in range(1, args.dmax + 1)), "the batch")
        if args.out_dir.exists() and not args.out_dir.is_dir():
            raise BadInput(f"--out-dir {args.out_dir} exists and is not a directory")
        jobs = []
        for L in range(1, args.Lmax + 1):
            for d in range(1, args.dmax + 1):
                feats = tuple(range(L + 1))
                path = args.out_dir / certificate_filename(feats, d, args.exactly)
                if path.exists() and not path.is_file():
                    raise BadInput(f"{path} exists and is not a file: nothing was written")
                jobs.append((feats, d, path))
        _check_out_dir(args.out_dir, args.overwrite)
        # every certificate is computed before the set is written: all or none
        certs = [(certificate(feats, d, args.exactly), path) for feats, d, path in jobs]
        from .io import write_set

        def recheck(real: Path) -> None:     # files added while computing are never lost
            _check_out_dir(args.out_dir, args.overwrite)

        written = write_set(args.out_dir, {path.name: (json.dumps(cert, indent=2,
                                                                  sort_keys=True) + "\n").encode()
                                           for cert, path in certs}, kind="certify",
                            recheck=recheck)
        for path in written:
            print(path)
        return EXIT_OK
    if args.d is None or (args.L is None and args.features is None):
        raise BadInput("certify needs --L or --features, and --d")
    if args.out is not None:        # a bad --out is found before the computation
        _check_out_file(args.out, args.overwrite)
    cert = certificate(_features(args), args.d, args.exactly)
    if args.out is None:
        print(json.dumps(cert, indent=2, sort_keys=True))
    else:
        print(write_certificate(cert, args.out))
    return EXIT_OK


def _cmd_verify(args) -> int:
    from .verify import verify_certificate

    code = EXIT_OK
    for path in args.files:
        report = verify_certificate(path)  # CertificateError -> exit 2
        if report.ok:
            print(f"ok      {_one_line(path)} ({report.checked} claims re-checked)")
        else:
            code = EXIT_FAILED
            print(f"FAILED  {_one_line(path)}")
            for problem in report.problems[:MAX_PROBLEMS]:
                print(f"  - {_one_line(problem)}")
            if len(report.problems) > MAX_PROBLEMS:
                print(f"  ... and {len(report.problems) - MAX_PROBLEMS} more problems")
    return code


COMMANDS = {"check": _cmd_check, "multiplicities": _cmd_multiplicities, "table": _cmd_table,
            "certify": _cmd_certify, "verify": _cmd_verify}


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the ``spanthm`` console script; returns the exit code."""
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser().parse_args(_attach_dash_values(argv))
        return COMMANDS[args.command](args)
    except (BadInput, ValueError, TypeError) as exc:
        # CertificateError is a ValueError: unreadable or malformed certificates land here;
        # CostLimitExceeded too: a request above a documented limit.
        print(f"spanthm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:            # an output path that is a directory, a full disk
        print(f"spanthm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("spanthm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
