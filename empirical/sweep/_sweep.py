"""Sweeps on Dask (docs/method.md §2.11): many backbone groups x datasets x marked pairs x
seeds x probe degrees, each cell computed exactly as :func:`empirical.diagnose` computes
it, spread over the workers of a Dask cluster and kept in a content-keyed task store.

:func:`sweep` is ``SweepConfig -> SweepResult``, in three steps:

1. **plan** (on the calling machine, before any work): load every dataset and every
   backbone once (bad input fails here, with nothing computed), draw each run's
   :class:`~empirical.diagnostic.DiagnosePlan` (a run is one group, dataset, pair and
   seed; its plan seed is the group's own, :func:`empirical.survey.model_seed` of the
   seed and the group's name, or the seed itself when ``config.paired``), cut each backbone's samples into chunks of whole batches and give every task
   its content key (:mod:`._store`);
2. **compute** on Dask distributed: the tasks not in the store, as futures (features per
   backbone and chunk, equivariance per backbone, probe fits per backbone and ``d``, the
   pooled bootstrap per run, followed in the same task by the capacity stage of
   ``config.options["capacity"]``: :func:`~empirical.diagnostic.widen_and_refit`, whose
   widened plans' features the worker extracts); every result is written to the store as it arrives, so an
   interrupted sweep loses only the tasks that were running, and a rerun computes only
   what is missing. A worker that dies is replaced by its nanny and the scheduler reruns
   its tasks (Dask's own fault tolerance; tested by killing one);
3. **assemble**: every run's :class:`~empirical.diagnostic.DiagnoseResult`, built by the
   same :func:`~empirical.diagnostic._pipeline.assemble_result` as ``diagnose``, and one
   row per (group, dataset, pair, seed, d).

Identity with ``diagnose``: a chunk holds whole batches of the backbone's own batch size
and each task runs with one intra-op thread (``diagnose`` runs several backbones with one
each), so the features, and every number after them, equal a serial ``diagnose`` of the
group with the same options and the run's plan seed (tested cell by cell).
"""

from __future__ import annotations

import dataclasses

import logging
import os
import socket
import struct
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..runtime import FIT_UNITS, Progress
from ..data import Dataset
from ..data import load as load_dataset
from ..diagnostic import BackboneProbes, DegreeFit
from ..diagnostic import check_cutoff as _check_cutoff, batch_size, rotate
from ..diagnostic import marked_direction
from ..adapters import BackboneEntry, resolve_backbones
from ..diagnostic import FeatureFacts, assemble_result, backbone_facts, common_degrees
from ..runtime import dataset_fingerprint, resolve_device, versions
from ..diagnostic import DiagnosePlan, make_plan
from ..diagnostic import CapacityPoint, DiagnoseResult, ProbeRecord
from ..survey import model_seed
from ._config import Group, SweepConfig, specs_of
from ..backbone import supports
from ..cache import TaskStore, content_key, features_key, model_key
from ..diagnostic import check_sample, rotation_record
from . import _tasks

__all__ = ["sweep", "plan_sweep", "SweepPlan", "RunJob", "BackboneJob", "default_store"]

def default_store(out: Path) -> Path:
    """The task store beside an output directory: ``OUT.store``."""
    out = Path(out)
    return out.parent / f"{out.name}.store"


@dataclass
class BackboneJob:
    """One backbone of one run: its spec, what is recorded of it, and its task keys."""

    name: str
    spec: str
    sha256: Optional[str]
    facts: Dict
    info: Dict
    rotation_seed: int
    chunks: List[Tuple[str, int, int]]          # (key, start, stop) over the samples
    equivariance_key: str
    probe_keys: Dict[int, str]                  # d -> key
    directions: np.ndarray


@dataclass
class RunJob:
    """One diagnosis of the sweep: a group on a dataset, a marked pair and a seed."""

    run_id: str
    group: Group
    dataset: str
    dataset_index: int
    pair: Optional[Tuple[int, int]]
    seed: int
    plan: DiagnosePlan
    backbones: List[BackboneJob]
    key: str


@dataclass
class SweepPlan:
    """Everything decided before the first task runs."""

    config: SweepConfig
    datasets: List[Dataset]
    runs: List[RunJob]

    def tasks(self) -> Dict[str, int]:
        keys = {"features": set(), "equivariance": set(), "probe": set(), "run": set()}
        for run in self.runs:
            keys["run"].add(run.key)
            for bb in run.backbones:
                keys["features"].update(k for k, _, _ in bb.chunks)
                keys["equivariance"].add(bb.equivariance_key)
                keys["probe"].update(bb.probe_keys.values())
        return {k: len(v) for k, v in keys.items()}


def _distinct_names(names: List[str], specs: List[str]) -> List[str]:
    """Backbone names within a group, made distinct with their folder where needed."""
    out = list(names)
    for i, n in enumerate(names):
        if names.count(n) > 1:
            out[i] = f"{Path(specs[i].split(':', 1)[-1]).parent.name}/{n}"
    if len(set(out)) != len(out):
        raise ValueError(f"two backbones of one group have the name {out}: rename the files")
    return out


def plan_sweep(config: SweepConfig, log: Callable[[str], None] = lambda _: None) -> SweepPlan:
    """Step 1 (see the module docstring): ``ValueError`` for any bad input, before work."""
    datasets = []
    for source in config.datasets:
        data = load_dataset(source)
        if Path(str(source)).is_file():     # recorded relative to the config file, store too
            data = dataclasses.replace(
                data, metadata={**data.metadata, "source": config.recorded(str(source))})
        datasets.append(data)
    loaded: Dict[str, Tuple] = {}
    for i, spec in enumerate(specs_of(config)):
        log(f"loading backbone {i + 1}: {spec}")
        entry = resolve_backbones([spec], trust_checkpoints=config.trust_checkpoints)[0]
        obj = entry.backbone
        loaded[spec] = (entry, obj, entry.info(), backbone_facts(obj), batch_size(obj))
    device = config.options.get("device")
    resolve_device(device)
    opts = {k: v for k, v in config.options.items() if k != "device"}
    runs: List[RunJob] = []
    for group in config.groups:
        entries = [loaded[s][0] for s in group.backbones]
        names = _distinct_names([e.name for e in entries], list(group.backbones))
        try:
            feature_degrees = common_degrees(entries)
        except ValueError as exc:
            raise ValueError(f"group {group.name!r}: {exc}") from None
        feature_dim = max(2 * _dim(loaded[s][3]["irreps_out"]) for s in group.backbones)
        for di, (source, data) in enumerate(zip(config.datasets, datasets)):
            for pair in config.pairs:
                for seed in config.seeds:
                    own = model_seed(seed, group.name, config.paired)
                    plan = make_plan(data, feature_degrees, marked=pair,
                                     degrees=config.degrees, lmax=config.lmax, seed=own,
                                     frames=config.frames, feature_dim=feature_dim,
                                     n_backbones=len(entries), **opts)
                    runs.append(_run_job(config, group, names, source, di, data, pair, seed,
                                         plan, loaded))
    return SweepPlan(config=config, datasets=datasets, runs=runs)


def _dim(irreps: str) -> int:
    from e3nn import o3

    return o3.Irreps(irreps).dim


def _chunk_size(chunk: int, batch: int) -> int:
    """Configurations per task: ``chunk`` rounded down to whole batches (at least one)."""
    return max(batch, (chunk // batch) * batch)


def _recorded_info(config: SweepConfig, info: Dict) -> Dict:
    """A backbone's record with its source as the results record it: a file's path
    relative to the configuration's directory (:meth:`SweepConfig.recorded`)."""
    if not isinstance(info.get("source"), str):
        return info
    return {**info, "source": config.recorded(info["source"])}


def _run_job(config, group, names, source, di, data, pair, seed, plan, loaded) -> RunJob:
    source = config.recorded(source)        # as results.json records it: never absolute
    positions = plan.positions(data)
    numbers = np.asarray(data.numbers)
    reference = plan.energies(data)
    a, b = plan.marked
    backbones = []
    for i, spec in enumerate(group.backbones):
        _, obj, info, facts, batch = loaded[spec]
        try:
            _check_cutoff(obj, data, plan)
        except ValueError as exc:
            raise ValueError(f"backbone {spec!r} on {source}: {exc}") from None
        rotations = plan.rotations(i)
        # the feature cache's keys (docs/method.md §2.12): a sweep and a diagnose of the
        # same model on the same configurations share their entries
        model = model_key(obj, info.get("sha256")) or content_key("backbone", spec, facts)
        energy = supports(obj, "energy")
        size = _chunk_size(config.chunk, batch)
        chunks = []
        for start in range(0, plan.n_samples, size):
            stop = min(start + size, plan.n_samples)
            chunks.append((features_key(model, positions[start:stop], rotations[start:stop],
                                        numbers, [a, b], energy), start, stop))
        chosen, matrices = check_sample(len(plan.frames), plan.seed, i)
        equi = content_key("equivariance", model, data.positions[plan.frames[chosen]],
                           matrices, numbers)
        probes = {d: content_key("probe", names[i], [k for k, _, _ in chunks], plan,
                                 reference, d) for d in plan.degrees}
        backbones.append(BackboneJob(
            name=names[i], spec=spec, sha256=info.get("sha256"), facts=facts,
            info=_recorded_info(config, info),
            rotation_seed=plan.rotation_seed(i), chunks=chunks, equivariance_key=equi,
            probe_keys=probes, directions=marked_direction(rotate(positions, rotations), a, b)))
    pair_label = "default" if pair is None else f"{pair[0]}-{pair[1]}"
    run_id = f"{group.name} | {source} | {pair_label} | seed {seed}"
    key = content_key("run", [bb.probe_keys for bb in backbones],
                      [bb.equivariance_key for bb in backbones],
                      [(bb.name, bb.facts, bb.info) for bb in backbones],
                      dataset_fingerprint(data), source, versions())
    return RunJob(run_id=run_id, group=group, dataset=source, dataset_index=di, pair=pair,
                  seed=seed, plan=plan, backbones=backbones, key=key)


# -- store entries ---------------------------------------------------------------------

def _probe_entry(p: BackboneProbes) -> Tuple[Dict, Dict]:
    (d, fit), = p.fits.items()
    arrays = {"pred_s": fit.pred_s, "pred_r": fit.pred_r, "s_te": fit.s_te,
              "train_mean": fit.train_mean}
    meta = {"name": p.name, "eps": p.eps, "rmse": p.energy_error_rmse_meV, "d": d,
            "k": fit.k, "records": [r.to_dict() for r in p.records],
            "sweep": [r.to_dict() for r in p.sweep], "warnings": list(p.warnings)}
    return arrays, meta


def _probe_from_entry(arrays: Dict, meta: Dict) -> BackboneProbes:
    d = int(meta["d"])
    fit = DegreeFit(d=d, k=int(meta["k"]), pred_s=arrays["pred_s"],
                    pred_r=arrays.get("pred_r"), s_te=arrays["s_te"],
                    train_mean=arrays["train_mean"])
    return BackboneProbes(name=meta["name"], eps=meta["eps"],
                          energy_error_rmse_meV=meta["rmse"], fits={d: fit},
                          records=[ProbeRecord(**r) for r in meta["records"]],
                          sweep=[CapacityPoint(**r) for r in meta["sweep"]],
                          warnings=list(meta["warnings"]))


def _chunk_from_entry(arrays: Dict, meta: Dict) -> Dict:
    return {"features": arrays["features"], "energies": arrays.get("energies"),
            "dtype": meta["dtype"], "scale": meta["scale"], "seconds": meta["seconds"]}


# -- the cluster ---------------------------------------------------------------------

#: Seconds a ``--scheduler`` address has to accept a connection and send the first
#: message of Dask's handshake (:func:`_check_scheduler`), before Dask's client connects.
SCHEDULER_TIMEOUT = 5.0
#: Seconds Dask's client then has to connect to the checked scheduler.
CLIENT_TIMEOUT = 20.0
#: Most bytes the handshake's first message may announce (a real one is under 100): a
#: service that claims more is not a Dask scheduler, and nothing of that size is read.
HANDSHAKE_MAX_BYTES = 64 * 1024
#: Keys of the handshake a Dask scheduler sends first (``Comm.handshake_info``).
_HANDSHAKE_KEYS = {"python", "pickle-protocol", "compression"}
#: Dask's length prefixes: unsigned 64-bit, native order (``distributed.comm.tcp``).
_LENGTH = struct.Struct("Q")


class _NotDask(ValueError):
    """What a ``--scheduler`` address answered is not a Dask scheduler's handshake."""


def _recv_exactly(sock: socket.socket, n: int, deadline: float) -> bytes:
    """``n`` bytes from ``sock``, all before ``deadline`` (``time.monotonic``):
    ``socket.timeout`` when they are late, :class:`_NotDask` when the peer closes."""
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout()
        sock.settimeout(left)
        part = sock.recv(min(n - len(buf), 65536))
        if not part:
            raise _NotDask(f"it closed the connection after {len(buf)} bytes")
        buf += part
    return bytes(buf)


def _check_handshake(body: bytes) -> None:
    """The handshake's frames (Dask's ``pack_frames``: a frame count, the frame lengths,
    the frames) with a msgpack table of :data:`_HANDSHAKE_KEYS` in the first;
    :class:`_NotDask` otherwise. Nothing is unpickled."""
    import msgpack
    from distributed.protocol.utils import unpack_frames

    (n_frames,) = _LENGTH.unpack_from(body)
    header = _LENGTH.size * (1 + n_frames)
    if not 1 <= n_frames or header > len(body):
        raise _NotDask(f"its message announces {n_frames} frames in {len(body)} bytes")
    lengths = struct.unpack_from(f"{n_frames}Q", body, _LENGTH.size)
    if header + sum(lengths) != len(body):
        raise _NotDask("its message's frame lengths do not add up")
    frames = unpack_frames(body)
    try:
        info = msgpack.unpackb(bytes(frames[0]), raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise _NotDask(f"its message is not msgpack ({exc})") from None
    if not isinstance(info, dict) or not _HANDSHAKE_KEYS <= set(info):
        raise _NotDask(f"its message is not a Dask handshake: {str(info)[:80]}")
    # the values Dask's client then compares with its own (``handshake_configuration``):
    # a table with the right keys but other types would fail there, inside Dask
    python, protocol = info["python"], info["pickle-protocol"]
    if (not isinstance(python, (list, tuple)) or len(python) != 3
            or not all(type(v) is int for v in python)):
        raise _NotDask(f"its handshake's python version is {str(python)[:40]}, not three "
                       "integers")
    if type(protocol) is not int or not 0 <= protocol <= 255:
        raise _NotDask(f"its handshake's pickle protocol is {str(protocol)[:40]}, not a "
                       "small integer")
    if info["compression"] is not None and not isinstance(info["compression"], str):
        raise _NotDask(f"its handshake's compression is {str(info['compression'])[:40]}, "
                       "not a name")


def _check_scheduler(address: str) -> None:
    """``ValueError`` (one line) unless a Dask scheduler answers at ``address`` within
    :data:`SCHEDULER_TIMEOUT` s: it must be a ``tcp://HOST:PORT`` address, accept a
    connection, and send Dask's handshake (a length of at most
    :data:`HANDSHAKE_MAX_BYTES`, then a msgpack table). A silent service, an HTTP
    server, random bytes or a 3-EiB length prefix are refused here, before Dask's own
    client would wait without a bound or allocate what the prefix claims."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, loc = parse_address(address)
        host, port = parse_host_port(loc)
    except ValueError as exc:
        raise ValueError(f"scheduler address {address!r} is not an address such as "
                         f"tcp://127.0.0.1:8786 ({exc})") from None
    if scheme != "tcp":
        raise ValueError(f"scheduler address {address!r}: only tcp:// scheduler addresses are "
                         "supported (for another transport, make a distributed.Client "
                         "and pass sweep(..., client=...))")
    if not 0 < int(port) < 65536:
        raise ValueError(f"scheduler address {address!r}: port {port} is out of range")
    deadline = time.monotonic() + SCHEDULER_TIMEOUT
    try:
        with socket.create_connection((host, int(port)), timeout=SCHEDULER_TIMEOUT) as sock:
            head = _recv_exactly(sock, _LENGTH.size, deadline)
            (n,) = _LENGTH.unpack(head)
            if not 2 * _LENGTH.size <= n <= HANDSHAKE_MAX_BYTES:
                raise _NotDask(f"it sent {head!r}, a length of {n} bytes (a Dask handshake "
                               f"is at most {HANDSHAKE_MAX_BYTES})")
            body = _recv_exactly(sock, n, deadline)
    except _NotDask as exc:
        raise ValueError(f"{address} is not a Dask scheduler: {exc}") from None
    except socket.timeout:
        raise ValueError(f"no Dask scheduler answers at {address}: no handshake within "
                         f"{SCHEDULER_TIMEOUT:g} s") from None
    except OSError as exc:
        raise ValueError(f"no Dask scheduler answers at {address}: {exc}") from None
    try:
        _check_handshake(body)
    except _NotDask as exc:
        raise ValueError(f"{address} is not a Dask scheduler: {exc}") from None


def _connect(address: str):
    """A client of the scheduler at ``address`` (:data:`CLIENT_TIMEOUT` s to answer)."""
    from distributed import Client

    return Client(address, timeout=f"{CLIENT_TIMEOUT:g}s")


def _client(scheduler: Optional[str], workers: Optional[int]):
    """``(client, cluster or None)``: a client of the scheduler at ``scheduler``, or of a
    LocalCluster of ``workers`` processes (default: the cores) with one thread each."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("sweeps run on Dask distributed: pip install "
                         "'spectral-ceilings[sweep]'") from None
    if scheduler is not None:
        _check_scheduler(scheduler)
        try:
            return _connect(scheduler), None
        except (OSError, TimeoutError) as exc:
            reason = str(exc).strip() or (f"{type(exc).__name__}: no answer within "
                                          f"{CLIENT_TIMEOUT:g} s")
            raise ValueError(f"no Dask scheduler answers at {scheduler}: {reason}") from None
        except (MemoryError, ValueError, TypeError, KeyError) as exc:
            # a service that sent a Dask handshake and then something else: a frame whose
            # announced size cannot be allocated (MemoryError), bytes msgpack or numpy
            # refuse (ValueError), values Dask's own negotiation cannot compare
            raise ValueError(f"{scheduler} is not a Dask scheduler: after its handshake it "
                             f"sent what Dask cannot read ({type(exc).__name__}: "
                             f"{str(exc)[:120]})") from None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                           dashboard_address=":0", silence_logs=logging.ERROR,
                           preload=["empirical.sweep._worker"])
    return Client(cluster), cluster


class _Starting:
    """A cluster and client being started in a thread: :meth:`result` waits for them,
    :meth:`close` stops them (also when planning failed first)."""

    def __init__(self, scheduler, workers, log, config: Optional[SweepConfig] = None):
        import threading

        self._out, self._error = None, None
        self.warmups = []       # futures of the warm-up tasks (kept until the end)

        def start():
            try:
                self._out = _client(scheduler, workers)
            except BaseException as exc:      # re-raised in the calling thread
                self._error = exc
                return
            if config is not None and scheduler is None:
                # the workers import torch and load the first backbones while the plan
                # is drawn here (a warm-up only: the tasks check every SHA-256)
                try:
                    c = self._out[0]
                    self.warmups = [c.submit(_tasks.preload, specs_of(config),
                                             config.trust_checkpoints,
                                             config.options.get("device"), workers=[w],
                                             pure=False)
                                    for w in c.scheduler_info()["workers"]]
                except Exception:       # noqa: BLE001 - a warm-up; the tasks load anyway
                    pass

        log("starting the Dask cluster" if scheduler is None else f"connecting to {scheduler}")
        self._thread = threading.Thread(target=start, daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out

    def close(self) -> None:
        self._thread.join()
        self.warmups = []
        if self._out is not None:
            client, cluster = self._out
            client.close()
            if cluster is not None:
                cluster.close()


def _describe(client, cluster) -> str:
    n = len(client.scheduler_info().get("workers", {}))
    return (f"local cluster, {n} worker processes x 1 thread" if cluster is not None else
            f"scheduler {client.scheduler.address}, {n} workers at the start")


# -- step 2 ----------------------------------------------------------------------------

class _Work:
    """The futures of one sweep, the store writes and the progress bookkeeping."""

    def __init__(self, plan: SweepPlan, store: TaskStore, client, bar: Progress,
                 on_task, intra: int):
        self.plan, self.store, self.client, self.bar = plan, store, client, bar
        self.on_task, self.intra = on_task or (lambda kind, key: None), intra
        self.futures: Dict[str, object] = {}      # key -> future
        self.kinds: Dict[str, str] = {}
        self.units: Dict[str, float] = {}
        self.timings: Dict[str, List[float]] = {"features": [], "equivariance": [],
                                                 "probe": [], "run": []}
        self.per_config: List[float] = []
        self.computed = {k: 0 for k in self.timings}
        self.stored = {k: 0 for k in self.timings}
        self.device = plan.config.options.get("device")
        self.datasets: Dict[int, object] = {}    # dataset index -> its future

    def _stored_chunk(self, key):
        return _chunk_from_entry(*self.store.load("features", key))

    def submit(self) -> None:
        """Every task not in the store, as futures; each run's bootstrap depends on its
        backbones' probe fits, and those on the backbone's feature chunks."""
        for run in self.plan.runs:
            if run.key in self.futures:      # the same work as an earlier run (content key)
                continue
            if self.store.has("run", run.key):
                self.stored["run"] += 1
                self.bar.advance(_run_units(run))
                continue
            data = self.plan.datasets[run.dataset_index]
            positions = run.plan.positions(data)
            both = [self._backbone_parts(run, i, bb, data, positions)
                    for i, bb in enumerate(run.backbones)]
            parts = [p for p, _ in both]
            widen = {"chunks": [c for _, c in both], "dataset": self._dataset(run),
                     "backbones": [{"spec": bb.spec, "sha256": bb.sha256,
                                    "irreps": bb.facts["irreps_out"],
                                    "directions": bb.directions} for bb in run.backbones],
                     "trusted": self.plan.config.trust_checkpoints, "device": self.device}
            f = self.client.submit(_summarize_parts, parts, run.plan, self.intra, widen,
                                   key=f"run-{run.key}", pure=False)
            self._track(run.key, f, "run", FIT_UNITS)

    def _dataset(self, run: RunJob):
        """The run's dataset on the cluster (sent once), for the widened plans' features:
        the result of a task, not scattered data, so that the scheduler recomputes it
        when the worker holding it dies."""
        i = run.dataset_index
        if i not in self.datasets:
            self.datasets[i] = self.client.submit(_hold, self.plan.datasets[i],
                                                  key=f"dataset-{i}-{run.key}", pure=False)
        return self.datasets[i]

    def _backbone_parts(self, run: RunJob, i: int, bb: BackboneJob, data, positions
                        ) -> Tuple[List, List]:
        """One backbone of a run: its chunk and equivariance tasks where missing, then
        ``(probe fits (futures, or stored fits sent to the cluster), one per d; its
        feature chunks (futures, or stored chunks sent to the cluster))``; the run's
        bootstrap task reads both (the chunks for the capacity stage)."""
        store, numbers = self.store, np.asarray(data.numbers)
        a, b = run.plan.marked
        rotations = run.plan.rotations(i)
        args = (bb.spec, self.plan.config.trust_checkpoints, bb.sha256)
        chunks = []
        for key, start, stop in bb.chunks:
            if key in self.futures:
                chunks.append(self.futures[key])
            elif store.has("features", key):
                self._count_stored("features", key, stop - start)
                chunks.append(key)      # read from the store only if a fit needs it
            else:
                f = self.client.submit(_tasks.extract_chunk, *args, positions[start:stop],
                                       rotations[start:stop], numbers, a, b, self.device,
                                       self.intra, key=f"features-{key}", pure=False)
                self._track(key, f, "features", stop - start)
                chunks.append(f)
        key = bb.equivariance_key
        if key not in self.futures and not store.has("equivariance", key):
            chosen, matrices = check_sample(len(run.plan.frames), run.plan.seed, i)
            f = self.client.submit(_tasks.measure_equivariance, *args,
                                   data.positions[run.plan.frames[chosen]], matrices,
                                   numbers, self.device, self.intra,
                                   key=f"equivariance-{key}", pure=False)
            self._track(key, f, "equivariance", 1)
        elif key not in self.futures:
            self._count_stored("equivariance", key, 0)
        chunks = [self._scatter(self._stored_chunk(r)) if isinstance(r, str) else r
                  for r in chunks]
        parts = []
        for d, pkey in bb.probe_keys.items():
            if pkey in self.futures:
                parts.append(self.futures[pkey])
            elif store.has("probe", pkey):
                self._count_stored("probe", pkey, FIT_UNITS)
                arrays, meta = store.load("probe", pkey)
                parts.append(self._scatter({"probes": _probe_from_entry(arrays, meta),
                                            "seconds": meta["seconds"]}))
            else:
                f = self.client.submit(_tasks.fit_probe, bb.name, chunks,
                                       bb.facts["irreps_out"], bb.directions,
                                       bb.rotation_seed, run.plan, run.plan.energies(data), d,
                                       self.intra, key=f"probe-{pkey}", pure=False)
                self._track(pkey, f, "probe", FIT_UNITS)
                parts.append(f)
        return parts, chunks

    def _count_stored(self, kind: str, key: str, units: float) -> None:
        """A task found in the store: counted (and its progress given) once."""
        if key not in self.kinds:
            self.kinds[key] = kind
            self.stored[kind] += 1
            self.bar.advance(units)

    def _scatter(self, value):
        """One future holding ``value`` (a stored result sent to the workers). Wrapped
        in a list: ``scatter`` of a bare dict would make each of its keys a cluster-wide
        key of its own, and every chunk's ``"features"`` the same one."""
        return self.client.scatter([value], hash=False)[0]

    def _track(self, key, future, kind, units) -> None:
        self.futures[key] = future
        self.kinds[key] = kind
        self.units[key] = units

    def collect(self, assemble: Callable) -> None:
        """Wait for every future; store each result as it arrives. A run is assembled
        once its features and equivariance are stored (its bootstrap may report first)."""
        from distributed import as_completed

        jobs = {run.key: run for run in self.plan.runs}
        pending: List[Tuple[str, Dict]] = []
        for future in as_completed(list(self.futures.values())):
            key = future.key.split("-", 1)[1]
            kind = self.kinds[key]
            if future.status == "error":
                exc = future.exception()
                raise ValueError(f"a {kind} task failed: {type(exc).__name__}: {exc}") from None
            value = future.result()
            del self.futures[key]
            self.timings[kind].append(float(value["seconds"]))
            self.computed[kind] += 1
            if kind == "run":
                pending.append((key, value))
            else:
                self._save(kind, key, value)
                self._done(kind, key)
            still = []
            for run_key, run_value in pending:
                if self._ready(jobs[run_key]):
                    result = assemble(jobs[run_key], run_value)
                    self.store.save("run", run_key, {}, {"result": result.to_dict(),
                                                         "seconds": run_value["seconds"]})
                    self._done("run", run_key)
                else:
                    still.append((run_key, run_value))
            pending = still
        if pending:     # cannot happen: every input of a run is one of the futures
            raise RuntimeError(f"{len(pending)} runs finished without their features stored")

    def _ready(self, run: "RunJob") -> bool:
        return all(self.store.has("features", k) for bb in run.backbones for k, _, _ in bb.chunks) \
            and all(self.store.has("equivariance", bb.equivariance_key) for bb in run.backbones)

    def _done(self, kind: str, key: str) -> None:
        self.bar.advance(self.units[key])
        self.on_task(kind, key)

    def _save(self, kind: str, key: str, value: Dict) -> None:
        if kind == "features":
            n = len(value["features"])
            self.per_config.append(value["seconds"] / max(n, 1))
            self.store.save("features", key, {"features": value["features"],
                                              "energies": value["energies"]},
                            {"dtype": value["dtype"], "scale": value["scale"],
                             "seconds": value["seconds"]})
        elif kind == "equivariance":
            self.store.save("equivariance", key, {}, value)
        else:
            arrays, meta = _probe_entry(value["probes"])
            self.store.save("probe", key, arrays, {**meta, "seconds": value["seconds"]})


def _run_units(run: RunJob) -> float:
    """Progress units of a whole run: its configurations, fits and bootstrap."""
    return FIT_UNITS + sum(bb.chunks[-1][2] + FIT_UNITS * len(bb.probe_keys)
                            for bb in run.backbones)


def _hold(value):
    """``value`` itself, as a task's result (:meth:`_Work._dataset`)."""
    return value


def _summarize_parts(parts, plan, intra, widen=None):
    """Stages 4 and 4b on a worker (a module-level function, so the scheduler can ship
    it)."""
    return _tasks.summarize_group(parts, plan, intra, widen)


# -- step 3 ----------------------------------------------------------------------------

def _assemble(plan: SweepPlan, store: TaskStore) -> Callable:
    device = plan.config.options.get("device")

    def build(run: RunJob, value: Dict) -> DiagnoseResult:
        data = plan.datasets[run.dataset_index]
        feats = []
        for bb in run.backbones:
            equi = store.load_meta("equivariance", bb.equivariance_key)
            scales, dtype = [], None
            for key, _, _ in bb.chunks:
                meta = store.load_meta("features", key)
                scales.append(meta["scale"])
                dtype = meta["dtype"]
            # the base plan's every rotation ran through the model on a worker
            feats.append(FeatureFacts(dtype=dtype, equivariance_error={
                "rotation": equi["rotation"], "reflection": equi["reflection"]},
                scale=float(max(scales)),
                rotations=rotation_record("auto", run.plan.rotations_per_config,
                                          run.plan.n_samples, len(run.plan.frames))))
        return assemble_result([(BackboneEntry.from_info(bb.name, bb.info), bb.facts)
                                for bb in run.backbones], data,
                               run.dataset, run.plan, feats, value["probes"],
                               value["summaries"], value["cells"],
                               resolve_device(device), seconds=value["seconds"],
                               run_facts={"rotate": "auto", "feature_cache": {
                                   "used": True, "reused": None, "written": None,
                                   "damaged_recomputed": None,
                                   "problem": None, "counted": "per sweep, in timings.json"}})
    return build


def sweep(config: SweepConfig, *, store=None, scheduler: Optional[str] = None,
          workers: Optional[int] = None, client=None, progress=None,
          on_task: Optional[Callable[[str, str], None]] = None,
          log: Callable[[str], None] = lambda _: None, intra_threads: int = 1,
          trust_checkpoints: bool = False):
    """Run a sweep (see the module docstring); returns a :class:`SweepResult`.

    Parameters
    ----------
    config : :class:`SweepConfig` (:func:`load_config` reads the TOML file)
    store : the task store's directory (default: ``config.store``, else
        :func:`default_store` of ``config.out``); finished tasks there are not rerun
    scheduler : address of a running Dask scheduler (``tcp://host:8786``); default: a
        LocalCluster of ``workers`` processes (default: the cores), one thread each,
        started and stopped here
    client : a ``distributed.Client`` to use instead (for example of a dask-jobqueue
        cluster); it is left running
    progress : bool or None (a bar when stderr is a terminal)
    on_task : called with ``(kind, key)`` after each task's result is stored
    intra_threads : torch intra-op threads per task (1, as diagnose gives each of
        several backbones; more on a GPU node or a big worker)
    trust_checkpoints : bool
        Load third-party (pickled) checkpoints, which run code when loaded: the
        caller's decision (CLI ``--trust-checkpoints``), never the configuration
        file's (:func:`load_config` refuses a trust key). ``config.trust_checkpoints``
        set in Python (``dataclasses.replace``) counts as the caller's too.

    Raises
    ------
    ValueError
        For bad input, before any task runs; for a task that failed (what finished is
        stored, and a rerun resumes).
    """
    from ._report import SweepResult

    start = time.perf_counter()
    if trust_checkpoints is not True and trust_checkpoints is not False:
        raise ValueError(f"trust_checkpoints must be True or False, got {trust_checkpoints!r}")
    if trust_checkpoints:
        config = replace(config, trust_checkpoints=True)
    store = _store_of(config, store)
    own = client is None
    starting = None
    if own:
        # the local cluster's worker processes start (and import torch) while the
        # backbones load here; a scheduler's address is only connected to when needed
        starting = _Starting(scheduler, workers, log, config)
    cluster = None
    try:
        plan = plan_sweep(config, log=log)
        counts = plan.tasks()
        total = sum(_run_units(run) for run in plan.runs)
        if own:
            client, cluster = starting.result()
        # created once the request is known good and the cluster answers: bad input or
        # an absent scheduler leave nothing behind
        task_store = TaskStore(store, on_damaged=lambda kind, key, reason: log(
            f"store: the {kind} entry {key[:12]} is damaged ({reason}); computing it again"))
        todo = [run for run in plan.runs if not task_store.has("run", run.key)]
        where = _describe(client, cluster) if todo else "none (every run in the store)"
        log(f"{len(plan.runs)} runs, {counts['features']} feature tasks, {counts['probe']} "
            f"probe fits, {len(plan.runs) - len(todo)} runs in the store; on {where}")
        bar = Progress(total, enabled=progress)
        bar.set_label("sweep")
        work = _Work(plan, task_store, client, bar, on_task, intra_threads)
        if todo:
            work.submit()
            work.collect(_assemble(plan, task_store))
        else:
            work.stored["run"] = len(plan.runs)
        bar.close()
    finally:
        if own:
            starting.close()
    results = [DiagnoseResult.from_dict(task_store.load("run", run.key)[1]["result"])
               for run in plan.runs]
    timing = _timing(work, task_store, where, time.perf_counter() - start)
    return SweepResult.build(plan, results, timing, store=str(task_store.root))


def _store_of(config, store):
    """The task store: ``store`` as given, else the file's, else ``OUT.store``."""
    if store is not None:
        return store
    if config.store is not None:
        return config.store
    if config.out is not None:
        return default_store(config.out)
    raise ValueError("give a store directory (or an output directory)")


def _timing(work, task_store, where: str, seconds: float) -> Dict:
    """``timings.json``: wall time, the cluster, tasks computed or read from the store
    (and damaged entries recomputed), seconds per task kind and per configuration."""
    return {"seconds": seconds, "cluster": where,
            "computed": work.computed, "from_store": work.stored,
            "damaged_recomputed": {k: sum(1 for kind, _, _ in task_store.damaged
                                          if kind == k) for k in work.timings},
            "task_seconds": {k: {"n": len(v), "total": float(np.sum(v)) if v else 0.0,
                                 "mean": float(np.mean(v)) if v else None}
                             for k, v in work.timings.items()},
            "feature_seconds_per_configuration": (float(np.mean(work.per_config))
                                                  if work.per_config else None)}
