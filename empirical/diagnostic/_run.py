r"""The spectral-injection diagnostic end to end (DESIGN §2.3-§2.8, §5).

:func:`diagnose` measures, for every backbone, probe degree ``d`` and target degree ``l``,
how well a degree-``d`` SPN of the frozen marked-atom features recovers :math:`s_l` on
held-out rotated configurations, and sets every cell beside :mod:`spanthm`'s prediction.

Protocol (every choice below is recorded in ``results.json["config"]``)
----------------------------------------------------------------------
1. Configurations: all frames of the dataset (or a seeded subset of ``frames``), split by
   configuration into probe-training and held-out test parts (``test_fraction``, seeded);
   no configuration is in both. The backbones' own training frames are not excluded (a
   user's backbone does not say which they were); the ceiling does not depend on it, the
   injected-residual nuisance is at most smaller on them.
2. Every sample is a configuration under its own seeded Haar-random rotation
   (``rotations_per_config`` samples per configuration, default 1); every backbone gets
   its own independent rotations, so that backbones are independent clusters for the
   bootstrap and a chance correlation of one test set is not shared by all of them. The
   backbone is run on the rotated positions (:mod:`._features`).
3. Targets :math:`s_l(Ru)`, ``l = 0..lmax`` (:mod:`._injection`); ``l = 0`` is constant, its
   ``rho`` is undefined and reported as ``null``.
4. Injected residual (needs ``energy``): :math:`r = E_{inj} - E_{bb} = (E_{ref} - E_{bb}) +
   \varepsilon s_l`, centred with its training-split mean (the backbone's constant energy
   offset, which a probe intercept would otherwise carry into :math:`R^2_{inj}`).
   :math:`\varepsilon` defaults, per backbone, to the standard deviation of its energy error
   :math:`E_{ref} - E_{bb}` on the probe-training configurations (signal-to-noise 1).
5. SPN (:mod:`._probe`): reduction fitted on the training part, all monomials up to ``d``,
   closed-form ridge with grouped cross-validation (``spn="ridge"``) or the
   gradient-trained variant (``spn="trained"``).
6. Metrics on the held-out part: ``rho`` (Pearson), ``gain`` (raw gain),
   ``r2_inj``; the mean over backbones is the point estimate and the hierarchical cluster
   bootstrap (backbones, then held-out samples; one resampling plan for every cell, so
   contrasts between cells are paired) gives 95 % percentile intervals.
7. Prediction: :func:`spanthm.recoverable_degrees` with the backbone's feature degrees;
   a cell agrees when a predicted-recoverable ``l`` has mean ``rho >= recoverable``
   threshold (0.5) and a predicted-blind ``l`` has ``|rho| <= blind`` threshold (0.2).
"""

from __future__ import annotations

from contextlib import contextmanager
import hashlib
import platform
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from e3nn import o3

import spanthm

from ..backbone import Backbone, check_protocol, equivariance_error
from ..backbone import load as load_backbone
from ..backbone import shipped
from ..backbone._checkpoint import checkpoint_name
from ..data import Dataset
from ..data import load as load_dataset
from .._progress import Progress
from .._result import RunResult
from . import _statistics as st
from ._features import input_dtype, marked_features, rotate
from ._injection import haar_rotations, marked_atoms, marked_direction, signal, signal_coefficients
from ._probe import (fit_reduction, fit_ridge, fit_trained, monomials, n_monomials)

__all__ = ["diagnose", "DiagnoseResult", "SCHEMA_VERSION", "THRESHOLDS", "PAPER"]

SCHEMA_VERSION = 1
#: Agreement thresholds on the mean held-out rho (DESIGN §2.8).
THRESHOLDS = {"recoverable": 0.5, "blind": 0.2}
#: The paper's headline figures (d = 2, L = 2 NequIP on aspirin), for the report.
PAPER = {"rho": {"4": 0.913, "5": 0.078}, "cliff_ratio": 11.7, "r2_inj": {"4": 0.374, "5": 0.006}}

# seed streams (numpy SeedSequence keys under the run seed)
_STREAM_FRAMES, _STREAM_SPLIT, _STREAM_ROTATIONS, _STREAM_CV, _STREAM_BOOT = 11, 12, 13, 14, 15


#: Upper bound of the automatic width, in channels per feature degree.
MAX_AUTO_CHANNELS = 4


def auto_k(width: int, d: int, n_train: int) -> int:
    """Default SPN width for degree ``d``: ``m * width`` with the largest ``m <=``
    :data:`MAX_AUTO_CHANNELS` (channels per feature degree, ``width = sum_l (2l + 1)``)
    whose ``C(k + d, d)`` monomials are at most half of ``n_train`` (the probe then has at
    least two samples per coefficient); at least one channel per degree."""
    best = 1
    for m in range(1, MAX_AUTO_CHANNELS + 1):
        if 2 * n_monomials(m * width, d) <= n_train:
            best = m
    return best * width


_CACHE: Optional[Dict] = None


@contextmanager
def feature_cache():
    """Within this context, :func:`diagnose` computes the marked-atom features of a given
    backbone object, dataset, frame subset, rotation stream and marked pair once and reuses
    them (the controls probe one backbone with many SPNs)."""
    global _CACHE
    previous, _CACHE = _CACHE, {}
    try:
        yield
    finally:
        _CACHE = previous


def _stream(seed: int, *keys: int) -> int:
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version
    out = {"python": platform.python_version()}
    for name in ("numpy", "scipy", "sympy", "torch", "e3nn", "spectral-ceilings"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _fingerprint(dataset: Dataset) -> str:
    h = hashlib.sha256()
    for arr in (dataset.positions, dataset.numbers, dataset.energies, dataset.forces):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _float(x) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


#: Prefix of a nequip model in ``backbones`` (CLI ``--backbones nequip:PATH``).
NEQUIP_PREFIX = "nequip:"


def _nequip_backbone(item: str):
    """``(object, name, info)`` for ``nequip:PATH``: a nequip 0.19 checkpoint (``.ckpt``) or
    packaged model (``.nequip.zip``) through :mod:`empirical.adapters.nequip` (needs the
    ``nequip`` extra; without it the adapter's ValueError says how to install it)."""
    from ..adapters import nequip as nequip_adapter

    obj = nequip_adapter.load(item)
    path = Path(item[len(NEQUIP_PREFIX):])
    base = path.name
    for suffix in (".nequip.zip", ".ckpt"):
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    # nequip-train names its checkpoints best / last: the run directory tells them apart
    name = f"{path.parent.name}-{base}" if base in ("best", "last") and path.parent.name else base
    info = {"source": obj.origin, "sha256": obj.sha256, "seed": -1,
            "test_energy_mae_meV": None, "test_force_mae_meV_per_A": None,
            "nequip_layer": obj.layer}
    return obj, name, info


def _resolve_backbones(backbones, names):
    """``[(name, object, info)]`` from names, paths or protocol objects."""
    if backbones is None:
        backbones = [entry["name"] for entry in shipped(role="diagnostic")]
        if not backbones:
            raise ValueError("no shipped backbones found: give backbones explicitly")
    if isinstance(backbones, (str, Path)) or not isinstance(backbones, Sequence):
        backbones = [backbones]
    if len(backbones) == 0:
        raise ValueError("no backbones given")
    if names is not None and len(names) != len(backbones):
        raise ValueError(f"{len(names)} names for {len(backbones)} backbones")
    listed = {e["name"]: e for e in shipped()}
    out = []
    for i, item in enumerate(backbones):
        info: Dict = {}
        if isinstance(item, (str, Path)) and str(item).startswith(NEQUIP_PREFIX):
            obj, name, info = _nequip_backbone(str(item))
        elif isinstance(item, (str, Path)):
            obj = load_backbone(item)
            if Path(str(item)).is_file():
                path, name = Path(str(item)), checkpoint_name(item)
            else:
                path, name = Path(listed[str(item)]["path"]), str(item)
            info["source"] = (f"shipped backbone {name}" if str(item) in listed
                              and not Path(str(item)).is_file() else str(path))
            info["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            test = (getattr(obj, "metadata", {}) or {}).get("test", {})
            info["seed"] = int(getattr(obj, "seed", -1))
            info["test_energy_mae_meV"] = test.get("energy_mae_meV")
            info["test_force_mae_meV_per_A"] = test.get("force_mae_meV_per_A")
        else:
            obj = item
            name = f"{type(obj).__name__}_{i}"
            origin = getattr(obj, "origin", None)   # adapters record where a model came from
            info["source"] = (str(origin) if origin else
                              f"python object {type(obj).__module__}.{type(obj).__qualname__}")
            if isinstance(getattr(obj, "sha256", None), str):
                info["sha256"] = obj.sha256
        try:
            check_protocol(obj)
        except TypeError as exc:
            raise ValueError(f"backbone {i} cannot be diagnosed: {exc}") from None
        if names is not None:
            name = str(names[i])
        if isinstance(obj, Backbone):
            obj.eval()
        out.append((name, obj, info))
    seen = set()
    for name, _, _ in out:
        if name in seen:
            raise ValueError(f"two backbones are named {name!r}: give distinct names")
        seen.add(name)
    return out


class DiagnoseResult(RunResult):
    """What :func:`diagnose` measured; :meth:`to_dict` is exactly ``results.json``."""

    def save(self, out_dir: Union[str, Path], plots: bool = True) -> List[Path]:
        """Write ``results.json``, ``report.md`` and the PNG plots into ``out_dir`` (each
        file atomically; the directory is created). Returns the paths written."""
        from ._report import write_outputs
        return write_outputs(self, Path(out_dir), plots=plots)


def _validate_options(degrees, lmax, seed, n_boot, test_fraction, folds, k, reduction, spn, eps):
    degrees = list(degrees)
    if not degrees:
        raise ValueError("give at least one probe degree d")
    for d in degrees:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < 1:
            raise ValueError(f"probe degree d must be an integer >= 1, got {d!r}")
    if len(set(degrees)) != len(degrees):
        raise ValueError(f"probe degrees repeat: {degrees}")
    if not isinstance(lmax, (int, np.integer)) or isinstance(lmax, bool) or lmax < 0:
        raise ValueError(f"lmax (the highest target degree l) must be an integer >= 0, got {lmax!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_boot < 1:
        raise ValueError(f"bootstrap size must be >= 1, got {n_boot}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if folds < 2:
        raise ValueError(f"cross-validation needs >= 2 folds, got {folds}")
    if k is not None and k < 1:
        raise ValueError(f"SPN width k must be >= 1, got {k}")
    if reduction not in ("irrep", "pca"):
        raise ValueError(f"reduction must be 'irrep' or 'pca', got {reduction!r}")
    if spn not in ("ridge", "trained"):
        raise ValueError(f"spn must be 'ridge' or 'trained', got {spn!r}")
    if spn == "trained" and reduction != "irrep":
        raise ValueError("the trained SPN learns a per-degree reduction: use reduction='irrep'")
    if eps is not None and not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive number of eV, got {eps}")
    return sorted(int(d) for d in degrees)


def diagnose(backbones=None, dataset: Union[str, Path, Dataset] = "aspirin",
             marked: Optional[Sequence[int]] = None, degrees: Sequence[int] = (1, 2, 3),
             lmax: int = 7, seed: int = 0, k: Optional[int] = None, reduction: str = "irrep",
             spn: str = "ridge", n_boot: int = 2000, frames: Optional[int] = None,
             test_fraction: float = 0.2, eps: Optional[float] = None, folds: int = 3,
             k_sweep: Sequence[int] = (1, 2, 3, 4), rotations_per_config: int = 1,
             names: Optional[Sequence[str]] = None,
             progress=None) -> DiagnoseResult:
    """Run the diagnostic (see the module docstring for the protocol).

    Parameters
    ----------
    backbones : list of checkpoint names / paths / protocol objects, optional
        Default: the four shipped aspirin backbones. Objects need ``irreps_out`` and
        ``node_features(positions, numbers)``; ``energy`` enables ``r2_inj``. All must
        carry the same feature degrees (they are pooled).
    dataset : ``"aspirin"``, a path, or a :class:`~empirical.data.Dataset`
    marked : (a, b), optional
        Marked atom pair (0-based); default the dataset's ``marked_bond``.
    degrees : probe degrees ``d >= 1``;  lmax : highest target degree.
    k : SPN width (default two channels of every feature degree, see :mod:`._probe`).
    reduction : ``"irrep"`` or ``"pca"``;  spn : ``"ridge"`` or ``"trained"``.
    n_boot : bootstrap resamples;  frames : use a seeded subset of this many frames.
    eps : injection amplitude in eV (default: per backbone, its energy-error SD).
    rotations_per_config : samples per configuration, each under its own rotation (more
        samples for wide or high-degree probes; cross-validation folds and the
        train/test split keep all samples of a configuration together).
    k_sweep : channels per degree for the capacity sweep (ridge, point estimates; empty
        to skip); widths whose monomial count exceeds half the training samples are skipped.
    progress : bool or None (None: a bar when stderr is a terminal).

    Raises
    ------
    ValueError
        For bad input (named in the message); nothing is computed or written.
    """
    start = time.perf_counter()
    degrees = _validate_options(degrees, lmax, seed, n_boot, test_fraction, folds, k,
                                reduction, spn, eps)
    if not isinstance(rotations_per_config, (int, np.integer)) or rotations_per_config < 1:
        raise ValueError(f"rotations per configuration must be an integer >= 1, "
                         f"got {rotations_per_config!r}")
    if isinstance(dataset, Dataset):
        data = dataset
    else:
        data = load_dataset(dataset)
    if data.n_frames < 2:
        raise ValueError(f"the dataset has {data.n_frames} frame(s): the probe needs "
                         "training and held-out configurations")
    a, b = marked_atoms(data, marked)
    entries = _resolve_backbones(backbones, names)
    feature_degrees = None
    for name, obj, info in entries:
        ls = sorted({ir.l for _, ir in o3.Irreps(obj.irreps_out)})
        info["irreps_out"] = str(o3.Irreps(obj.irreps_out))
        info["L"] = max(ls)
        if feature_degrees is None:
            feature_degrees = ls
        elif ls != feature_degrees:
            raise ValueError(f"backbone {name!r} has feature degrees {ls}, the first one "
                             f"{feature_degrees}: backbones of different L cannot be pooled")
    L = max(feature_degrees)
    if L < 1:
        raise ValueError("the backbones' features carry no l > 0 component: nothing to probe")

    # configurations, split, rotations
    n_all = data.n_frames
    if frames is not None:
        if frames < 2 or frames > n_all:
            raise ValueError(f"frames must lie in 2..{n_all}, got {frames}")
        chosen = np.sort(np.random.default_rng(_stream(seed, _STREAM_FRAMES)).choice(
            n_all, frames, replace=False))
    else:
        chosen = np.arange(n_all)
    n = len(chosen)
    n_test = int(round(test_fraction * n))
    if n_test < 2 or n - n_test < folds:
        raise ValueError(f"{n} configurations are too few for a {test_fraction:.0%} held-out "
                         f"part and {folds}-fold cross-validation")
    perm = np.random.default_rng(_stream(seed, _STREAM_SPLIT)).permutation(n)
    test_cfg = np.zeros(n, dtype=bool)
    test_cfg[perm[:n_test]] = True
    # samples: every configuration `rotations_per_config` times, each its own rotation
    R = int(rotations_per_config)
    groups = np.repeat(np.arange(n), R)                              # configuration of a sample
    test_idx, train_idx = np.flatnonzero(test_cfg[groups]), np.flatnonzero(~test_cfg[groups])
    positions = data.positions[chosen][groups]
    e_ref = data.energies[chosen][groups]
    ls = list(range(lmax + 1))
    coeffs = {l: signal_coefficients(l, seed) for l in ls}

    width = sum(2 * l + 1 for l in feature_degrees)
    n_train = len(train_idx)
    if k is not None:
        k_by_d = {d: int(k) for d in degrees}
    else:
        k_by_d = {d: auto_k(width, d, n_train)
                  for d in degrees}
    predicted = {}
    for d in degrees:
        rec = spanthm.recoverable_degrees(d, features=set(feature_degrees))
        predicted[str(d)] = {"ceiling": int(spanthm.ceiling(d, features=set(feature_degrees))),
                             "recoverable": [int(x) for x in rec if x <= lmax]}

    fits_per_backbone = len(degrees) * (1 + len(k_sweep))
    bar = Progress(len(entries) * (n + 50 * fits_per_backbone) + 50, enabled=progress)
    warnings: List[str] = []
    probes: List[Dict] = []
    per: Dict = {}          # (backbone index, d) -> dict of test predictions
    sweep_rows: List[Dict] = []
    eps_used: List[Optional[float]] = []
    k_eff: Dict[str, int] = {}
    for bi, (name, obj, info) in enumerate(entries):
        bar.set_label(f"features: {name} ({bi + 1}/{len(entries)})")
        # every backbone its own Haar rotations (independent clusters for the bootstrap)
        rotations = haar_rotations(len(groups), _stream(seed, _STREAM_ROTATIONS, bi))
        u = marked_direction(rotate(positions, rotations), a, b)
        S = np.stack([signal(l, u, coeffs[l]) for l in ls], axis=1)      # (samples, lmax+1)
        info["equivariance_error"] = _equivariance(obj, positions[0], data.numbers,
                                                   rotations[0])
        key = (id(obj), _fingerprint(data), chosen.tobytes(), R, a, b,
               _stream(seed, _STREAM_ROTATIONS, bi))
        if _CACHE is not None and key in _CACHE:
            mf = _CACHE[key][1]
            bar.advance(len(groups))
        else:
            mf = marked_features(obj, positions, data.numbers, rotations, a, b,
                                 progress=lambda m: bar.advance(m))
            if _CACHE is not None:
                _CACHE[key] = (obj, mf)          # the object is kept alive with its key
        x_tr, x_te = mf.features[train_idx], mf.features[test_idx]
        if mf.energies is not None:
            err = e_ref - mf.energies
            eps_b = float(eps) if eps is not None else float(np.std(err[train_idx]))
            if not eps_b > 0:
                raise ValueError(f"backbone {name!r}: its energy error has zero spread; "
                                 "give eps explicitly")
        else:
            err, eps_b = None, None
        eps_used.append(eps_b)
        info["eps_eV"] = eps_b
        info["energy_error_rmse_meV"] = (None if err is None else
                                         float(np.sqrt(np.mean(err[train_idx] ** 2)) * 1e3))
        targets_tr = S[train_idx][:, 1:]
        reductions = {}
        for d in degrees:
            bar.set_label(f"SPN d={d}: {name}")
            k_d = k_by_d[d]
            if k_d not in reductions:
                reductions[k_d] = fit_reduction(x_tr, mf.irreps, k_d, reduction)
            red = reductions[k_d]
            k_eff[str(d)] = int(red.k)
            z_tr, z_te = red.transform(x_tr), red.transform(x_te)
            M = n_monomials(red.k, d)
            if len(train_idx) < 2 * M:
                msg = (f"{name}, d={d}: {len(train_idx)} training samples for {M} monomials "
                       f"(k={red.k}): fewer than twice the monomials; the probe may be "
                       "capacity- or sample-limited")
                if msg not in warnings:
                    warnings.append(msg)
            if err is not None:
                resid = err[:, None] + eps_b * S[:, 1:]
                resid_tr = resid[train_idx] - resid[train_idx].mean(axis=0)
            cv_seed = _stream(seed, _STREAM_CV)
            if spn == "ridge":
                phi_tr, phi_te = monomials(z_tr, d), monomials(z_te, d)
                y = targets_tr if err is None else np.concatenate([targets_tr, resid_tr], axis=1)
                fit = fit_ridge(phi_tr, y, groups[train_idx], folds=folds, seed=cv_seed)
                pred = fit.predict(phi_te)
                pred_s = pred[:, :lmax]
                pred_r = None if err is None else pred[:, lmax:]
            else:
                pred_s = fit_trained(x_tr, targets_tr, groups[train_idx], red, d,
                                     seed=cv_seed)(x_te)
                pred_r = None if err is None else fit_trained(
                    x_tr, resid_tr, groups[train_idx], red, d, seed=cv_seed)(x_te)
            bar.advance(50)
            s_te = S[test_idx]
            cell = {"pred_s": pred_s, "pred_r": pred_r, "eps": eps_b, "s_te": s_te,
                    "train_mean": S[train_idx].mean(axis=0)}
            per[(bi, d)] = cell
            for l in ls:
                if l == 0:
                    rho = gain = r2 = None
                else:
                    rho = st.pearson(pred_s[:, l - 1], s_te[:, l])
                    gain = st.raw_gain(pred_s[:, l - 1], s_te[:, l], float(cell["train_mean"][l]))
                    r2 = (None if pred_r is None else
                          st.r2_injected(pred_r[:, l - 1], eps_b * s_te[:, l], eps_b))
                probes.append({"backbone": name, "d": d, "l": l, "rho": _float(rho),
                               "r2_inj": _float(r2), "gain": _float(gain)})
        # capacity sweep: point estimates at the boundary and just above it
        for m in k_sweep:
            red_m = fit_reduction(x_tr, mf.irreps, m * width, reduction)
            zm_tr, zm_te = red_m.transform(x_tr), red_m.transform(x_te)
            for d in degrees:
                M = n_monomials(red_m.k, d)
                bar.advance(50)
                if 2 * M > len(train_idx):
                    continue
                dl = predicted[str(d)]["ceiling"]
                cols = [l for l in (dl, dl + 1) if 1 <= l <= lmax]
                if not cols:
                    continue
                fit = fit_ridge(monomials(zm_tr, d), S[train_idx][:, cols], groups[train_idx],
                                folds=folds, seed=_stream(seed, _STREAM_CV))
                pred = fit.predict(monomials(zm_te, d))
                for j, l in enumerate(cols):
                    sweep_rows.append({"backbone": name, "channels_per_degree": int(m),
                                       "k": int(red_m.k), "monomials": int(M), "d": d, "l": l,
                                       "rho": _float(st.pearson(pred[:, j], S[test_idx][:, l]))})

    # hierarchical cluster bootstrap, one plan for everything
    bar.set_label("bootstrap")
    boot = st.ClusterBootstrap([len(test_idx)] * len(entries), n_boot=n_boot,
                               seed=_stream(seed, _STREAM_BOOT))
    has_energy = all(e is not None for e in eps_used)
    summary: Dict = {}
    cells: List[Dict] = []
    for d in degrees:
        dl = predicted[str(d)]["ceiling"]
        rec = set(predicted[str(d)]["recoverable"])
        rho_pt, rho_ci, r2_pt, r2_ci, gain_pt, gain_ci = {}, {}, {}, {}, {}, {}
        dist_rho, dist_gain = {}, {}
        for l in ls:
            key = str(l)
            if l == 0:
                rho_pt[key] = rho_ci[key] = r2_pt[key] = r2_ci[key] = None
                gain_pt[key] = gain_ci[key] = None
                continue
            preds = [per[(bi, d)]["pred_s"][:, l - 1] for bi in range(len(entries))]
            targets = [per[(bi, d)]["s_te"][:, l] for bi in range(len(entries))]
            rhos = [st.pearson(p, t) for p, t in zip(preds, targets)]
            rho_pt[key] = _float(np.mean(rhos)) if all(r is not None for r in rhos) else None
            dist_rho[l] = boot.mean_of_cluster_stat(st.pearson_rows, preds, targets)
            rho_ci[key] = boot.interval(dist_rho[l]).to_list()
            gains = [st.raw_gain(p, t, float(per[(bi, d)]["train_mean"][l]))
                     for bi, (p, t) in enumerate(zip(preds, targets))]
            gain_pt[key] = _float(np.mean(gains))
            means = [float(per[(bi, d)]["train_mean"][l]) for bi in range(len(entries))]
            dist_gain[l] = _cluster_gain(boot, preds, targets, means)
            gain_ci[key] = boot.interval(dist_gain[l]).to_list()
            if has_energy:
                rp = [per[(bi, d)]["pred_r"][:, l - 1] for bi in range(len(entries))]
                sig = [eps_used[bi] * per[(bi, d)]["s_te"][:, l] for bi in range(len(entries))]
                r2s = [st.r2_injected(p, q, eps_used[bi]) for bi, (p, q) in enumerate(zip(rp, sig))]
                r2_pt[key] = _float(np.mean(r2s))
                r2_ci[key] = boot.interval(_cluster_r2(boot, rp, sig, eps_used)).to_list()
            else:
                r2_pt[key] = r2_ci[key] = None
        above = dl + 1
        if 1 <= dl <= lmax and above <= lmax:
            delta = gain_pt[str(dl)] - gain_pt[str(above)]
            delta_ci = boot.interval(dist_gain[dl] - dist_gain[above]).to_list()
            ratio = st.cliff_ratio(rho_pt[str(dl)], rho_pt[str(above)])
            ratio_ci = boot.interval(st.ratio_rows(dist_rho[dl], dist_rho[above])).to_list()
        else:
            delta = delta_ci = ratio = ratio_ci = None
        agree_all = True
        for l in ls:
            pred_label = "recoverable" if l in rec else "blind"
            rho = rho_pt[str(l)]
            if rho is None:
                measured, agrees = "undefined", None
            else:
                if rho >= THRESHOLDS["recoverable"]:
                    measured = "recoverable"
                elif abs(rho) <= THRESHOLDS["blind"]:
                    measured = "blind"
                else:
                    measured = "ambiguous"
                agrees = measured == pred_label
                agree_all = agree_all and agrees
            cells.append({"d": d, "l": l, "predicted": pred_label, "rho": rho,
                          "rho_ci": rho_ci[str(l)], "r2_inj": r2_pt[str(l)],
                          "measured": measured, "agrees": agrees})
        measured_ceiling = max([l for l in ls if rho_pt[str(l)] is not None
                                and rho_pt[str(l)] >= THRESHOLDS["recoverable"]], default=None)
        summary[str(d)] = {
            "ceiling": dl, "measured_ceiling": measured_ceiling,
            "rho": rho_pt, "rho_ci": rho_ci, "r2_inj": r2_pt, "r2_inj_ci": r2_ci,
            "gain": gain_pt, "gain_ci": gain_ci,
            "rho_boundary": rho_pt.get(str(dl)), "rho_above": rho_pt.get(str(above)),
            "cliff_ratio": _float(ratio), "cliff_ratio_ci": ratio_ci,
            "delta_contrast": _float(delta), "delta_contrast_ci": delta_ci,
            "agreement": bool(agree_all)}
    bar.advance(50)
    bar.close()

    config = {
        "dataset": {"source": data.metadata.get("source", str(dataset)),
                    "frames_total": int(n_all), "frames_used": int(n),
                    "sha256": _fingerprint(data)},
        "marked_atoms": [a, b],
        "marked_labels": [data.metadata.get("atom_labels", [None] * data.n_atoms)[x]
                          for x in (a, b)] if data.metadata.get("atom_labels") else None,
        "degrees": degrees, "lmax": int(lmax), "seed": int(seed),
        "seed_streams": {"frames": _STREAM_FRAMES, "split": _STREAM_SPLIT,
                         "rotations": _STREAM_ROTATIONS, "cv": _STREAM_CV,
                         "bootstrap": _STREAM_BOOT, "signal_coefficients": "[seed, 1, l]"},
        "test_fraction": float(test_fraction), "n_train": int(len(train_idx)),
        "n_test": int(len(test_idx)), "configurations_train": int(n - n_test),
        "configurations_test": int(n_test), "rotations_per_configuration": R,
        "rotations": "Haar (scipy), independent per backbone (seed stream [seed, rotations, backbone index])",
        "k_requested": None if k is None else int(k), "k": k_eff,
        "k_rule": ("given" if k is not None else
                   f"per d: the most channels per degree (<= {MAX_AUTO_CHANNELS}) whose monomial "
                   "count is at most half the training samples"),
        "reduction": reduction, "spn": spn,
        "folds": int(folds), "ridge_lambda_grid": "logspace(-7, 2, 19) x n_train",
        "n_boot": int(n_boot), "bootstrap": "hierarchical: backbones, then held-out samples",
        "interval": "95% percentile", "eps": None if eps is None else float(eps),
        "eps_rule": ("given" if eps is not None else
                     "per backbone: SD of E_ref - E_backbone on the probe-training configurations"),
        "thresholds": dict(THRESHOLDS), "k_sweep_channels_per_degree": [int(m) for m in k_sweep],
        "signal": "s_l = c . Y_l(u), e3nn real harmonics, component normalization, |c| = 1",
        "coefficients": {str(l): coeffs[l].tolist() for l in ls},
        "versions": _versions(),
    }
    payload = {
        "schema_version": SCHEMA_VERSION,
        "config": config,
        "backbones": [{"name": name, **info} for name, _, info in entries],
        "predicted": predicted,
        "probes": probes,
        "summary": summary,
        "cells": cells,
        "k_sweep": sweep_rows,
        "paper": PAPER,
        "warnings": warnings,
    }
    return DiagnoseResult(payload=payload, seconds=time.perf_counter() - start)


def _equivariance(backbone, positions: np.ndarray, numbers: np.ndarray,
                  rotation: np.ndarray) -> Dict[str, float]:
    """Max abs equivariance error of the features for one rotation and one roto-reflection
    (:func:`empirical.backbone.equivariance_error`), on one configuration; recorded so a
    reader can see that the probe's premise (equivariant features) holds."""
    import torch

    dtype = input_dtype(backbone)
    pos = torch.tensor(np.asarray(positions), dtype=dtype)
    num = torch.tensor(np.asarray(numbers), dtype=torch.long)
    R = torch.tensor(rotation, dtype=dtype)
    return {"rotation": equivariance_error(backbone, pos, num, R),
            "reflection": equivariance_error(backbone, pos, num, -R)}


def _cluster_gain(boot, preds, targets, means) -> np.ndarray:
    """Bootstrap distribution of the mean raw gain (each backbone its own training mean)."""
    return boot.mean_of_cluster_stat(st.raw_gain_rows, preds, targets,
                                     cluster_kwargs=[{"train_mean": m} for m in means])


def _cluster_r2(boot, preds, signals, eps_list) -> np.ndarray:
    """Bootstrap distribution of the mean R2_inj (per backbone its own eps)."""
    return boot.mean_of_cluster_stat(st.r2_injected_rows, preds, signals,
                                     cluster_kwargs=[{"eps": e} for e in eps_list])
