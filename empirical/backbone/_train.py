"""Training of a backbone on energies and forces, with checkpoints and resume.

Loss (per batch): ``energy_weight * mean(((E_pred - E) / N)^2) + force_weight *
mean((F_pred - F)^2)`` in eV^2 per atom and (eV/A)^2. Adam; learning rate halved when the
validation loss has not improved for ``patience`` epochs (``ReduceLROnPlateau``); training
stops early after ``stop_patience`` epochs without improvement, at ``epochs``, or when the
learning rate falls below ``min_lr``. Every epoch writes ``last.pt`` (resumable: optimizer,
scheduler and RNG states) and, when the validation loss improves, ``best.pt``; with
``save_every = N`` also ``epoch_<k>.pt`` for the initialization and every N-th epoch (the
checkpoints of one training run, for the ceiling over training). At the end
the best weights are evaluated on the held-out test split and written to ``backbone.pt``
(weights and training record only), the file to ship or diagnose.

Per-species shift and scale come from the training split: shift = mean energy per atom,
scale = RMS of the force components (one value for every species: a dataset of one
molecule cannot tell species apart). The average neighbour count for the message
normalization is measured on the training split with the backbone's ``r_max``.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from spanthm.io import portable_text

from ..checks import check_float, check_int
from ..data import Dataset, make_splits
from ..runtime import Progress
from ._checkpoint import read_checkpoint, save_checkpoint
from ._model import Backbone, BackboneConfig, estimate_size

__all__ = ["TrainSettings", "train", "evaluate", "dataset_statistics", "epoch_checkpoint_name",
           "training_bytes", "MAX_BATCH_SIZE", "MAX_EPOCHS", "TRAIN_ACTIVATION_FACTOR"]

#: Largest batch (configurations per optimizer step); the default is 8 on CPU, 32 on CUDA.
MAX_BATCH_SIZE = 4096
#: Most epochs one ``train`` call may run (the default is 200; early stopping usually ends
#: training well before).
MAX_EPOCHS = 100_000
#: Bytes a training step holds per value one edge carries through the forward pass
#: (:func:`empirical.backbone.estimate_size`), in units of the dtype's size: forces by
#: autograd with ``create_graph`` keep the forward and its first backward for the second
#: (measured 3.5 to 3.9 on CPU for L = 2, 32 channels, batches of 8 and 32).
TRAIN_ACTIVATION_FACTOR = 5


@dataclass
class TrainSettings:
    """Training hyperparameters (recorded in every checkpoint)."""

    epochs: int = 200
    batch_size: int = 0              # 0: 32 on CUDA, 8 on CPU
    lr: float = 5e-3
    energy_weight: float = 1.0
    force_weight: float = 1.0
    patience: int = 5
    stop_patience: int = 25
    min_lr: float = 1e-5
    train_frames: int = 1000
    val_frames: int = 250
    test_frames: int = 1000
    split_seed: int = 0
    max_minutes: float = 0.0         # 0: no time limit (stop after an epoch past it)
    save_every: int = 0              # N > 0: also keep epoch_<k>.pt every N epochs (and 0)

    def __post_init__(self):
        self.save_every = check_int("save_every", self.save_every, 0)
        self.epochs = check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        self.batch_size = check_int("batch_size", self.batch_size, 0, MAX_BATCH_SIZE,
                                    " (0: the default)")
        for name in ("train_frames", "val_frames", "test_frames"):
            setattr(self, name, check_int(name, getattr(self, name), 1, 2 ** 62))
        for name in ("patience", "stop_patience", "split_seed"):
            setattr(self, name, check_int(name, getattr(self, name), 0, 2 ** 62))
        self.lr = check_float("lr", self.lr, positive=True)
        self.min_lr = check_float("min_lr", self.min_lr, low=0.0)
        for name in ("energy_weight", "force_weight", "max_minutes"):
            setattr(self, name, check_float(name, getattr(self, name), low=0.0))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def epoch_checkpoint_name(epoch: int) -> str:
    """The file ``--save-every`` keeps after ``epoch`` (0: the initialization):
    ``epoch_0000.pt``, ``epoch_0005.pt``, ... (this package's format: weights only)."""
    return f"epoch_{int(epoch):04d}.pt"


def dataset_statistics(dataset: Dataset, indices, r_max: float) -> dict:
    """Energy shift (eV/atom), force RMS (eV/A) and average neighbour count of a split."""
    idx = np.asarray(indices)
    n = dataset.n_atoms
    # all-pairs distances a few frames at a time: at most about 64 MB of pairs at once
    chunk = max(1, (8 * 1024 ** 2) // max(1, 3 * n * n))
    counts = []
    for start in range(0, len(idx), chunk):
        pos = dataset.positions[idx[start:start + chunk]]
        d = np.linalg.norm(pos[:, :, None] - pos[:, None, :], axis=-1)
        counts.append((d < r_max).sum(axis=(1, 2)) - n)
    neighbours = np.concatenate(counts) / n
    return {"energy_shift": float(dataset.energies[idx].mean() / n),
            "energy_scale": float(np.sqrt(np.mean(dataset.forces[idx] ** 2))),
            "avg_num_neighbors": float(neighbours.mean())}


def training_bytes(config: BackboneConfig, n_atoms: int, batch_size: int,
                   dtype: torch.dtype = torch.float32) -> int:
    """Memory one training step needs (bytes), estimated before anything is built: the
    activations of ``batch_size`` configurations of ``n_atoms`` atoms with
    ``config.avg_num_neighbors`` edges per atom (:func:`estimate_size`'s ``edge_floats``
    per edge, times :data:`TRAIN_ACTIVATION_FACTOR`), plus weights, gradients and the two
    Adam moments."""
    size = estimate_size(config)
    item = torch.tensor([], dtype=dtype).element_size()
    edges = batch_size * n_atoms * config.avg_num_neighbors
    return int(item * (TRAIN_ACTIVATION_FACTOR * edges * size["edge_floats"]
                       + 4 * size["parameters"]))


def _check_training_memory(config: BackboneConfig, n_atoms: int, batch_size: int,
                           dtype: torch.dtype, device: str) -> None:
    """``ValueError`` when a training step would need more memory than a request may use
    (``EMPIRICAL_MAX_BYTES``, 8 GB by default; on CUDA the device's own memory)."""
    from ..runtime import max_bytes as _max_bytes

    need = training_bytes(config, n_atoms, batch_size, dtype)
    if device.startswith("cuda"):
        limit, where = torch.cuda.get_device_properties(device).total_memory, "the GPU's"
    else:
        limit, where = _max_bytes(), "the limit of"
    if need > limit:
        raise ValueError(f"a training step with batch size {batch_size} ({n_atoms} atoms, about "
                         f"{config.avg_num_neighbors:.0f} neighbours each) of a backbone with "
                         f"L = {config.L}, {config.channels} channels, {config.layers} layers "
                         f"needs about {need / 1e9:.3g} GB, above {where} {limit / 1e9:.3g} GB: "
                         "use a smaller --batch-size, fewer channels or a lower L (or raise "
                         "EMPIRICAL_MAX_BYTES if you mean it)")


def _batches(dataset: Dataset, idx: np.ndarray, size: int, dtype, device):
    n = dataset.n_atoms
    numbers = torch.as_tensor(np.array(dataset.numbers), device=device)
    for start in range(0, len(idx), size):
        b = idx[start:start + size]
        k = len(b)
        yield (torch.as_tensor(dataset.positions[b].reshape(-1, 3), dtype=dtype, device=device),
               numbers.repeat(k),
               torch.arange(k, device=device).repeat_interleave(n),
               torch.as_tensor(dataset.energies[b], dtype=dtype, device=device),
               torch.as_tensor(dataset.forces[b].reshape(-1, 3), dtype=dtype, device=device))


def evaluate(model: Backbone, dataset: Dataset, indices, batch_size: int = 16) -> dict:
    """Energy and force MAE / RMSE of ``model`` on the frames ``indices`` (meV units)."""
    device = next(model.buffers()).device
    e_err, f_err = [], []
    for pos, num, batch, e_ref, f_ref in _batches(dataset, np.asarray(indices), batch_size,
                                                  model.dtype, device):
        e, f = model.energy_and_forces(pos, num, batch)
        e_err.append((e - e_ref).detach().cpu().double().numpy())
        f_err.append((f - f_ref).detach().cpu().double().numpy().ravel())
    e_err, f_err = np.concatenate(e_err), np.concatenate(f_err)
    n = dataset.n_atoms
    return {"frames": int(len(e_err)),
            "energy_mae_meV": 1e3 * float(np.abs(e_err).mean()),
            "energy_rmse_meV": 1e3 * float(np.sqrt(np.mean(e_err**2))),
            "energy_mae_meV_per_atom": 1e3 * float(np.abs(e_err).mean() / n),
            "force_mae_meV_per_A": 1e3 * float(np.abs(f_err).mean()),
            "force_rmse_meV_per_A": 1e3 * float(np.sqrt(np.mean(f_err**2)))}


def train(dataset: Dataset, out_dir, config: BackboneConfig, seed: int,
          settings: Optional[TrainSettings] = None, dtype: torch.dtype = torch.float32,
          device: Optional[str] = None, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    """Train a backbone; returns the final training record (also in ``backbone.pt``).

    The steps: split and measure the training data, start (or resume) the run
    (:func:`_start`), train epoch by epoch until a stopping rule (:func:`_train_epoch`,
    :func:`_end_of_epoch`), then evaluate the best weights on the test split
    (:func:`_finish`). ``progress`` shows a bar per epoch on a terminal
    (:class:`empirical.runtime.Progress`).

    Raises
    ------
    ValueError
        Split sizes that do not fit the dataset, or ``resume`` without ``last.pt``.
    """
    settings = settings or TrainSettings()
    out = Path(out_dir)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    batch_size = settings.batch_size or (32 if device.startswith("cuda") else 8)
    splits = make_splits(dataset.n_frames, {"train": settings.train_frames,
                                            "validation": settings.val_frames,
                                            "test": settings.test_frames},
                         seed=settings.split_seed)
    stats = dataset_statistics(dataset, splits["train"], config.r_max)
    run = _start(out, dataset, config, seed, settings, stats, batch_size, dtype, device,
                 resume, log)
    run.meta_base = _meta_base(dataset, splits, settings, batch_size, stats, device, out)
    start_time = time.perf_counter()
    if settings.save_every and run.epoch == 0:
        # the initialization too: the first point of the ceiling over training
        save_checkpoint(out / epoch_checkpoint_name(0), run.model,
                        {**run.meta_base, "history": [], "epochs_run": 0, "status": "initial"})
    while run.epoch < settings.epochs:
        run.epoch += 1
        t0 = time.perf_counter()
        train_loss = _train_epoch(run, dataset, np.asarray(splits["train"]), settings,
                                  batch_size, device, progress)
        run.model.eval()
        val = evaluate(run.model, dataset, splits["validation"], batch_size=2 * batch_size)
        if _end_of_epoch(run, out, dataset, settings, train_loss, val, t0, log):
            break
        if settings.max_minutes and time.perf_counter() - start_time > 60 * settings.max_minutes:
            log(f"stop: time limit of {settings.max_minutes} min reached (resume with --resume)")
            break
    return _finish(run, out, dataset, splits, settings, batch_size, log)


@dataclass(eq=False)
class _Run:
    """The state of one training run between epochs (what ``last.pt`` saves)."""

    model: Backbone
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.ReduceLROnPlateau
    gen: torch.Generator
    history: list = field(default_factory=list)
    epoch: int = 0
    best: float = float("inf")
    since_best: int = 0
    meta_base: dict = field(default_factory=dict)

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]


def _start(out: Path, dataset: Dataset, config: BackboneConfig, seed: int,
           settings: TrainSettings, stats: dict, batch_size: int, dtype: torch.dtype,
           device: str, resume: bool, log: Callable[[str], None]) -> _Run:
    """A new run (the backbone built from ``config`` and the training statistics), or the
    run of ``out / "last.pt"`` with ``resume`` (its config, seed, dtype and states)."""
    state = None
    if resume:
        last = out / "last.pt"
        if not last.exists():
            raise ValueError(f"--resume: no checkpoint {last} to resume from")
        state = read_checkpoint(last)
        config = BackboneConfig.from_dict(state["config"])
        seed = int(state["seed"])
        dtype = torch.float64 if state["dtype"] == "float64" else torch.float32
    else:
        config = BackboneConfig(**{**config.to_dict(), **stats})
    _check_training_memory(config, dataset.n_atoms, batch_size, dtype, device)
    model = Backbone(config, seed=seed, dtype=dtype).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5,
                                                       patience=settings.patience)
    run = _Run(model=model, opt=opt, sched=sched, gen=torch.Generator().manual_seed(seed))
    if state is not None:
        model.load_state_dict(state["state_dict"])
        tr = state["training"]
        opt.load_state_dict(tr["optimizer"])
        sched.load_state_dict(tr["scheduler"])
        run.gen.set_state(tr["shuffle_rng"])
        run.history, run.epoch = state["metadata"]["history"], tr["epoch"]
        run.best, run.since_best = tr["best"], tr["since_best"]
        log(f"resumed from {out / 'last.pt'} after epoch {run.epoch}")
    return run


def _meta_base(dataset: Dataset, splits, settings: TrainSettings, batch_size: int,
               stats: dict, device: str, out: Path) -> dict:
    """What every checkpoint of the run records besides its history: data (its source
    with any path of this machine written relative to the run directory), splits,
    settings, statistics, versions and hardware."""
    source = dataset.metadata.get("source")
    return {
        "data": {"source": portable_text(source, out) if isinstance(source, str) else source,
                 "frames": dataset.n_frames,
                 "formula": dataset.formula},
        "splits": {"seed": splits.seed, "strategy": splits.strategy, "sizes": splits.sizes,
                   "indices": {k: [int(i) for i in v] for k, v in splits.indices.items()}},
        "settings": settings.to_dict(), "batch_size": batch_size, "statistics": stats,
        "versions": {"torch": torch.__version__, "e3nn": _version("e3nn"),
                     "python": platform.python_version()},
        "hardware": torch.cuda.get_device_name(0) if device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, "
             f"{torch.get_num_threads()} threads)",
    }


def _train_epoch(run: _Run, dataset: Dataset, train_idx: np.ndarray, settings: TrainSettings,
                 batch_size: int, device: str, progress: bool) -> float:
    """One pass over the shuffled training split; returns the mean training loss."""
    run.model.train()
    perm = train_idx[torch.randperm(len(train_idx), generator=run.gen).numpy()]
    total, seen = 0.0, 0
    n_batches = (len(perm) + batch_size - 1) // batch_size
    n_atoms = dataset.n_atoms
    with Progress(n_batches, enabled=None if progress else False, desc=f"epoch {run.epoch}",
                  unit="batch") as bar:
        for pos, num, batch, e_ref, f_ref in _batches(dataset, perm, batch_size,
                                                      run.model.dtype, device):
            e, f = run.model.energy_and_forces(pos, num, batch, create_graph=True)
            loss = (settings.energy_weight * (((e - e_ref) / n_atoms) ** 2).mean()
                    + settings.force_weight * ((f - f_ref) ** 2).mean())
            run.opt.zero_grad(set_to_none=True)
            loss.backward()
            run.opt.step()
            total += float(loss.detach()) * len(e_ref)
            seen += len(e_ref)
            bar.advance(1, f"loss {total / seen:.3e}")
    return total / seen


def _end_of_epoch(run: _Run, out: Path, dataset: Dataset, settings: TrainSettings,
                  train_loss: float, val: dict, t0: float, log: Callable[[str], None]) -> bool:
    """Record the epoch, step the scheduler, write the checkpoints (``best.pt`` when the
    validation loss improved, ``epoch_<k>.pt``, ``last.pt``); True when a stopping rule
    (patience, learning rate) ends the run."""
    val_loss = (settings.energy_weight * (val["energy_rmse_meV"] / 1e3 / dataset.n_atoms) ** 2
                + settings.force_weight * (val["force_rmse_meV_per_A"] / 1e3) ** 2)
    run.sched.step(val_loss)
    lr = run.lr
    record = {"epoch": run.epoch, "train_loss": train_loss, "val_loss": val_loss,
              "val_energy_mae_meV": val["energy_mae_meV"],
              "val_force_mae_meV_per_A": val["force_mae_meV_per_A"], "lr": lr,
              "seconds": time.perf_counter() - t0}
    run.history.append(record)
    log(f"epoch {run.epoch:4d}  train loss {record['train_loss']:.3e}  val E MAE "
        f"{val['energy_mae_meV']:7.2f} meV  val F MAE {val['force_mae_meV_per_A']:7.2f} "
        f"meV/A  lr {lr:.1e}  {record['seconds']:.1f} s")
    improved = val_loss < run.best
    if improved:
        run.best, run.since_best = val_loss, 0
    else:
        run.since_best += 1
    meta = {**run.meta_base, "history": run.history, "epochs_run": run.epoch,
            "status": "training"}
    if improved:
        save_checkpoint(out / "best.pt", run.model, {**meta, "best_epoch": run.epoch,
                                                     "validation": val})
    if settings.save_every and run.epoch % settings.save_every == 0:
        save_checkpoint(out / epoch_checkpoint_name(run.epoch), run.model, meta)
    save_checkpoint(out / "last.pt", run.model, meta, training={
        "optimizer": run.opt.state_dict(), "scheduler": run.sched.state_dict(),
        "shuffle_rng": run.gen.get_state(), "epoch": run.epoch, "best": run.best,
        "since_best": run.since_best})
    if run.since_best >= settings.stop_patience:
        log(f"early stop: no validation improvement for {run.since_best} epochs")
        return True
    if lr < settings.min_lr:
        log(f"stop: learning rate {lr:.1e} below {settings.min_lr:.1e}")
        return True
    return False


def _finish(run: _Run, out: Path, dataset: Dataset, splits, settings: TrainSettings,
            batch_size: int, log: Callable[[str], None]) -> dict:
    """Evaluate the best weights on the test split and write ``backbone.pt``; returns its
    training record."""
    best_blob = read_checkpoint(out / "best.pt")
    run.model.load_state_dict(best_blob["state_dict"])
    run.model.eval()
    test = evaluate(run.model, dataset, splits["test"], batch_size=2 * batch_size)
    finished = run.epoch >= settings.epochs or run.since_best >= settings.stop_patience or \
        run.lr < settings.min_lr
    meta = {**run.meta_base, "history": run.history, "epochs_run": run.epoch,
            "best_epoch": best_blob["metadata"]["best_epoch"],
            "validation": best_blob["metadata"]["validation"], "test": test,
            "status": "finished" if finished else "interrupted (resumable)"}
    save_checkpoint(out / "backbone.pt", run.model, meta)
    log(f"held-out test ({test['frames']} frames): energy MAE {test['energy_mae_meV']:.2f} meV "
        f"({test['energy_mae_meV_per_atom']:.3f} meV/atom), force MAE "
        f"{test['force_mae_meV_per_A']:.2f} meV/A -> {out / 'backbone.pt'}")
    return meta


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
