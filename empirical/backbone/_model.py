r"""A NequIP-style E(3)-equivariant message-passing backbone built with e3nn.

Architecture (following NequIP, Batzner et al. 2022)
---------------------------------------------------
* species embedding: one-hot of the species -> ``channels x 0e`` (linear);
* edges: every ordered pair of distinct atoms of one molecule closer than ``r_max``
  (5 A); edge harmonics :math:`Y^{l}(\hat r_{ij})`, ``l <= L``, e3nn's ``"component"``
  normalization; radial basis: ``n_basis`` (8) Bessel functions
  :math:`\sqrt{2/r_c}\,\sin(n\pi r/r_c)/r` times the polynomial cutoff of degree ``p = 6``;
* interaction block (``layers`` of them): linear; tensor product of node features with the
  edge harmonics (every path the selection rules allow into ``irreps_hidden``, both
  parities, ``uvu`` with per-edge weights from a radial MLP), scatter-sum divided by the
  average number of neighbours; linear; species-dependent self-connection (a tensor product
  with the species one-hot); gate nonlinearity (``activation`` on even scalars and the
  gates, tanh on odd scalars);
* the last interaction block outputs scalars only (``channels x 0e``, no gate), as in
  NequIP; per-atom energy readout (two linears), per-species scale and shift fixed from
  the training data; :math:`E = \sum_i E_i`, :math:`F = -\partial E / \partial r`.

Features for the diagnostic (:meth:`Backbone.node_features`): the output of the last block
that still carries ``l > 0`` (block ``layers - 1``), i.e. the input to the scalar-only
block, whose ``l > 0`` channels reach the energy and are therefore trained. Its irreps are
:attr:`Backbone.irreps_out`.

Conventions: positions in Angstrom, energies in eV, forces in eV/A; e3nn's real basis and
Wigner matrices (``irreps_out.D_from_matrix``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Dict, List, Optional

import torch
from e3nn import nn as enn
from e3nn import o3

from ..checks import check_float, check_int, is_int
from ..runtime import default_dtype

__all__ = ["BackboneConfig", "Backbone", "BackboneLayer", "hidden_irreps", "estimate_size",
           "MAX_L", "MAX_CHANNELS", "MAX_LAYERS", "MAX_N_BASIS", "MAX_RADIAL_HIDDEN",
           "MAX_CUTOFF_P", "MAX_R_MAX", "MAX_Z", "MAX_PARAMETERS", "MAX_CONSTANTS"]

ACTIVATIONS = {"silu": torch.nn.functional.silu, "tanh": torch.tanh,
               "softplus": torch.nn.functional.softplus, "gelu": torch.nn.functional.gelu}


#: Highest feature degree ``L``. e3nn's spherical harmonics stop at ``l = 12``; the coupling
#: constants of one interaction block grow like ``L^5`` and are computed on construction
#: (L = 8: about 15 s and 50 MB per block on a laptop CPU; L = 12: over 60 s and 700 MB),
#: so the backbone stops at twice the paper's largest L (4).
MAX_L = 8
#: Most channels per irrep (the paper's largest backbone has 128).
MAX_CHANNELS = 1024
#: Most interaction blocks (the paper uses 2 to 6; each costs about a second to build).
MAX_LAYERS = 32
#: Most radial basis functions (``n_basis``; 8 by default).
MAX_N_BASIS = 128
#: Widest radial MLP hidden layer (``radial_hidden``; 32 by default).
MAX_RADIAL_HIDDEN = 1024
#: Highest degree ``p`` of the polynomial cutoff (6 by default).
MAX_CUTOFF_P = 32
#: Largest cutoff radius in Angstrom (5 by default): well past any bonded neighbourhood; a
#: larger value is most likely a unit mistake (Bohr, pm).
MAX_R_MAX = 100.0
#: Atomic numbers the species embedding supports: 1 (H) .. 118 (Og).
MAX_Z = 118
#: Most trainable parameters of one backbone (:func:`estimate_size`): training holds four
#: copies (weights, gradients, two Adam moments), 3.2 GB in float64 at this bound, within
#: the 8 GB a request may use. The paper's largest (L = 4, 128 channels, 6 layers) has 18.5 M.
MAX_PARAMETERS = 100_000_000
#: Message values (edges times ``K * mul`` of the widest input block) the frozen pass
#: (:meth:`_EdgeTensorProduct.forward_frozen`) handles at a time: 2 MiB in float32,
#: within a CPU core's L2 cache.
EDGE_CHUNK_FLOATS = 2 ** 19
#: Most elements of the constant coupling tensors of all blocks together (float64, kept
#: once and cast once per dtype): 100 M elements are 0.8 GB (L = 8 with 32 layers: 96 M).
MAX_CONSTANTS = 100_000_000


def _check_species(species) -> List[int]:
    """Distinct atomic numbers in ``1..MAX_Z`` (at most ``MAX_Z`` of them)."""
    if isinstance(species, (str, bytes)) or not isinstance(species, (list, tuple)):
        raise ValueError(f"species must be a list of atomic numbers, got {type(species).__name__}")
    if not species:
        raise ValueError("species must name at least one atomic number")
    if len(species) > MAX_Z:
        raise ValueError(f"species lists {len(species)} atomic numbers; there are {MAX_Z}")
    for z in species:
        if not is_int(z) or not 1 <= z <= MAX_Z:
            shown = repr(z) if len(repr(z)) <= 40 else repr(z)[:40] + "..."
            raise ValueError(f"species: {shown} is not an atomic number (1..{MAX_Z})")
    if len(set(species)) != len(species):
        repeated = sorted({int(z) for z in species if species.count(z) > 1})
        raise ValueError(f"species repeat atomic numbers {repeated}")
    return [int(z) for z in species]


@dataclass
class BackboneConfig:
    """Hyperparameters of :class:`Backbone` (stored in every checkpoint).

    Every size is checked on construction, before any module is built: each field against
    its bound (:data:`MAX_L`, :data:`MAX_CHANNELS`, :data:`MAX_LAYERS`, :data:`MAX_N_BASIS`,
    :data:`MAX_RADIAL_HIDDEN`, :data:`MAX_CUTOFF_P`, :data:`MAX_R_MAX`, species in
    ``1..``:data:`MAX_Z`), then the whole model's parameter count and coupling constants
    (:func:`estimate_size`) against :data:`MAX_PARAMETERS` and :data:`MAX_CONSTANTS`.
    Raises ``ValueError`` naming the first bad field.
    """

    L: int = 2
    channels: int = 16
    layers: int = 3
    r_max: float = 5.0
    n_basis: int = 8
    cutoff_p: int = 6
    radial_hidden: int = 32
    activation: str = "silu"
    species: List[int] = field(default_factory=lambda: [1, 6, 8])
    avg_num_neighbors: float = 1.0
    energy_shift: float = 0.0     # eV per atom (per-species, same value for all by default)
    energy_scale: float = 1.0     # eV/A (force RMS of the training data)
    species_shift: Optional[List[float]] = None
    species_scale: Optional[List[float]] = None

    def __post_init__(self):
        if not is_int(self.L) or self.L < 1:
            raise ValueError(f"L must be an integer >= 1 (the backbone needs l > 0 features), "
                             f"got {self.L!r}")
        self.L = check_int("L", self.L, 1, MAX_L, " (the backbone's highest feature degree)")
        self.channels = check_int("channels", self.channels, 1, MAX_CHANNELS)
        if is_int(self.layers) and self.layers < 2:
            raise ValueError(f"layers must be an integer >= 2 (the last one is scalar-only), "
                             f"got {self.layers!r}")
        self.layers = check_int("layers", self.layers, 2, MAX_LAYERS)
        self.n_basis = check_int("n_basis", self.n_basis, 1, MAX_N_BASIS)
        self.cutoff_p = check_int("cutoff_p", self.cutoff_p, 1, MAX_CUTOFF_P)
        self.radial_hidden = check_int("radial_hidden", self.radial_hidden, 1,
                                        MAX_RADIAL_HIDDEN)
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {self.activation!r}")
        self.r_max = check_float("r_max", self.r_max, high=MAX_R_MAX, positive=True)
        self.species = _check_species(self.species)
        self.avg_num_neighbors = check_float("avg_num_neighbors", self.avg_num_neighbors,
                                              positive=True)
        self.energy_shift = check_float("energy_shift", self.energy_shift)
        self.energy_scale = check_float("energy_scale", self.energy_scale)
        for name in ("species_shift", "species_scale"):
            values = getattr(self, name)
            if values is None:
                continue
            if not isinstance(values, (list, tuple)) or len(values) != len(self.species):
                raise ValueError(f"{name} must list one number per species "
                                 f"({len(self.species)}), got {_short(values)}")
            setattr(self, name, [check_float(name, v) for v in values])
        size = estimate_size(self)
        if size["parameters"] > MAX_PARAMETERS:
            raise ValueError(f"a backbone with L = {self.L}, {self.channels} channels, "
                             f"{self.layers} layers would have {size['parameters']:,} "
                             f"parameters, above the limit of {MAX_PARAMETERS:,}")
        if size["constants"] > MAX_CONSTANTS:
            raise ValueError(f"a backbone with L = {self.L} and {self.layers} layers would "
                             f"hold {size['constants']:,} coupling constants, above the "
                             f"limit of {MAX_CONSTANTS:,}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values) -> "BackboneConfig":
        """A config from a checkpoint's dict: ``ValueError`` (one line) for a value that is
        not a dict, an unknown key or any bad field, before anything is built."""
        if not isinstance(values, dict):
            raise ValueError(f"the config is a {type(values).__name__}, not a dict")
        known = {f.name for f in fields(cls)}
        unknown = [k for k in values if k not in known]
        if unknown:
            raise ValueError(f"unknown config keys {_short(unknown)}")
        return cls(**values)


def _short(value, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


def estimate_size(config: "BackboneConfig") -> Dict[str, int]:
    """Sizes of the :class:`Backbone` that ``config`` describes, from its irreps alone
    (nothing is built; exact, the tests compare with built models).

    Returns ``parameters`` (trainable), ``constants`` (elements of the float64 coupling
    tensors of all blocks) and ``edge_floats`` (values one edge carries through the
    forward pass over all blocks: gathered features, coupling products, radial weights and
    messages; times the number of edges, the activations of one evaluation).
    """
    c = config
    n_species = len(c.species)
    sh = o3.Irreps.spherical_harmonics(c.L)
    hidden = hidden_irreps(c.channels, c.L)
    scalars_c = o3.Irreps(f"{c.channels}x0e")
    half = max(c.channels // 2, 1)
    params = n_species * c.channels + c.channels * half + half
    constants = 0
    edge_floats = sh.dim + c.n_basis
    irreps = scalars_c
    for layer in range(c.layers):
        last = layer == c.layers - 1
        target = scalars_c if last else hidden
        if last:
            block_out = target
            out = target
        else:
            scalars = o3.Irreps([(m, ir) for m, ir in target if ir.l == 0])
            gated = o3.Irreps([(m, ir) for m, ir in target if ir.l > 0])
            gates = o3.Irreps([(m, "0e") for m, _ in gated])
            block_out = scalars + gates + gated
            out = scalars + gated
        targets = {ir for _, ir in block_out}
        tp_out, weight_numel = [], 0
        for mul, ir_in in irreps:
            k_total, n_paths = 0, 0
            for _, ir_sh in sh:
                for ir_out in ir_in * ir_sh:
                    if ir_out in targets:
                        tp_out.append((mul, ir_out))
                        k_total += ir_out.dim
                        n_paths += 1
                        weight_numel += mul
            if n_paths:
                constants += sh.dim * ir_in.dim * k_total + n_paths * k_total
                edge_floats += mul * ir_in.dim + ir_in.dim * k_total + 2 * mul * k_total
        edge_floats += 2 * c.radial_hidden + weight_numel
        params += (_linear_params(irreps, irreps)                      # linear_1
                   + c.n_basis * c.radial_hidden + c.radial_hidden ** 2  # radial MLP
                   + c.radial_hidden * weight_numel                      # radial_out
                   + _linear_params(o3.Irreps(tp_out), block_out)        # linear_2
                   + n_species * _linear_params(irreps, block_out))      # self-connection
        irreps = out
    return {"parameters": int(params), "constants": int(constants),
            "edge_floats": int(edge_floats)}


def _linear_params(irreps_in: o3.Irreps, irreps_out: o3.Irreps) -> int:
    """Weights of ``o3.Linear(irreps_in, irreps_out)`` (no biases): every input block
    connects to every output block of the same irrep."""
    total_in: Dict[o3.Irrep, int] = {}
    for mul, ir in irreps_in:
        total_in[ir] = total_in.get(ir, 0) + mul
    return sum(total_in.get(ir, 0) * mul for mul, ir in irreps_out)


def hidden_irreps(channels: int, L: int) -> o3.Irreps:
    """``channels`` copies of every ``l <= L`` with both parities (NequIP with parity)."""
    return o3.Irreps([(channels, (l, p)) for l in range(L + 1) for p in (1, -1)]).simplify()


class _BesselCutoff(torch.nn.Module):
    """Bessel radial basis times NequIP's polynomial cutoff."""

    def __init__(self, r_max: float, n_basis: int, p: int):
        super().__init__()
        self.r_max, self.p = r_max, p
        self.register_buffer("freq", torch.arange(1, n_basis + 1) * math.pi / r_max)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x = r / self.r_max
        p = self.p
        env = (1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1)
               - p * (p + 1) / 2 * x ** (p + 2)) * (x < 1)
        basis = math.sqrt(2.0 / self.r_max) * torch.sin(self.freq * r[:, None]) / r[:, None]
        return basis * env[:, None]


class _EdgeTensorProduct(torch.nn.Module):
    r"""Tensor product of node features with edge harmonics, per-edge weights ("uvu").

    For every input block :math:`(\text{mul}, l_1 p_1)`, harmonic :math:`l_2 p_2` and
    output :math:`l_3 p_3` allowed by the selection rules and present in ``target``:
    :math:`o_{eu} = w_{eu}\, \sqrt{2 l_3 + 1}\, C^{l_1 l_2 l_3}(x_{eu}, Y_e)` with e3nn's
    unit-norm coupling tensor :math:`C` (``o3.wigner_3j``), so component-normalized inputs
    give component-normalized outputs; each path writes its own output block
    (:attr:`irreps_out`), mixed afterwards by a linear layer. Same mathematics as
    ``o3.TensorProduct(..., "uvu", shared_weights=False)`` (the benchmark's e3nn-naive side
    and the tests compare the two).

    Written out for speed on CPU, where e3nn's generated code (one small batched product
    per path, the per-edge weight tensor sliced once per path) spends most of a training
    step in tiny ``bmm`` calls and in the zero fills of slice backwards. Here all paths of
    one input block are one product: the harmonics are contracted with a constant
    ``(sh_dim, d1, K)`` tensor holding every path's coupling tensor side by side
    (:math:`K = \sum_p d_{3,p}`), one ``bmm`` couples it with the gathered node features,
    and the per-path radial weights are expanded to the ``K`` columns inside the (small)
    parameter, before the per-edge matrix product.
    """

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, target: o3.Irreps):
        super().__init__()
        self.irreps_in, self.irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_sh)
        targets = {ir for _, ir in o3.Irreps(target)}
        paths, out = [], []
        # per input block: (block index, first path, number of paths, K, column offsets)
        groups, constants = [], []
        sh_slices = self.irreps_sh.slices()
        for i, (mul, ir_in) in enumerate(self.irreps_in):
            first, cols, couplings = len(paths), [], []
            for j, (_, ir_sh) in enumerate(self.irreps_sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in targets:
                        paths.append((i, j, len(out)))
                        out.append((mul, ir_out))
                        cg = o3.wigner_3j(ir_in.l, ir_sh.l, ir_out.l, dtype=torch.float64) * math.sqrt(
                            2 * ir_out.l + 1)
                        couplings.append((j, cg))
            if not couplings:
                continue
            k_total = sum(cg.shape[2] for _, cg in couplings)
            big = torch.zeros(self.irreps_sh.dim, ir_in.dim, k_total, dtype=torch.float64)
            expand = torch.zeros(len(couplings), k_total, dtype=torch.float64)
            offset = 0
            for p, (j, cg) in enumerate(couplings):
                d3 = cg.shape[2]
                big[sh_slices[j], :, offset:offset + d3] = cg.permute(1, 0, 2)
                expand[p, offset:offset + d3] = 1.0
                cols.append((offset, d3))
                offset += d3
            constants.append((big.reshape(self.irreps_sh.dim, -1), expand))
            groups.append((i, first, len(couplings), k_total, cols))
        self.paths = paths
        self.groups = groups
        # Constants kept in float64 outside the state dict and cast once per (dtype,
        # device), so that a float64 model is exact whatever dtype it was built or loaded in.
        self._constants64 = constants
        self._constants_cache: Dict[tuple, list] = {}
        self._column_paths_cache: Dict[torch.device, list] = {}
        self.path_irreps = [ir for _, ir in out]
        # Output blocks grouped by irrep: concatenating same-irrep blocks in this order gives
        # the simplified irreps below (few blocks for the next linear layer to slice).
        self.order = sorted(range(len(out)), key=lambda k: (out[k][1].l, -out[k][1].p, k))
        self.irreps_out = o3.Irreps([out[k] for k in self.order]).simplify()
        self.weight_sizes = [self.irreps_in[i].mul for i, _, _ in paths]
        self.weight_numel = sum(self.weight_sizes)
        # columns of the radial weight matrix read by each group (paths are contiguous)
        starts = [0]
        for size in self.weight_sizes:
            starts.append(starts[-1] + size)
        self.group_columns = [(starts[first], starts[first + n])
                              for _, first, n, _, _ in groups]

    def _constants(self, dtype: torch.dtype, device: torch.device) -> list:
        key = (dtype, device)
        if key not in self._constants_cache:
            self._constants_cache[key] = [(c.to(dtype=dtype, device=device),
                                           e.to(dtype=dtype, device=device))
                                          for c, e in self._constants64]
        return self._constants_cache[key]

    def _column_paths(self, device: torch.device) -> list:
        """Per group, the path (0 .. n_paths - 1) of each of its ``K`` output columns."""
        if device not in self._column_paths_cache:
            self._column_paths_cache[device] = [
                torch.tensor([p for p, (_, d3) in enumerate(cols) for _ in range(d3)],
                             dtype=torch.long, device=device)
                for *_, cols in self.groups]
        return self._column_paths_cache[device]

    def reference(self) -> o3.TensorProduct:
        """e3nn's ``o3.TensorProduct`` with the same paths, in path order (``"uvu"``,
        per-edge weights in this module's column layout): output block ``k`` is path
        ``k``. For tests; it has no parameters of its own."""
        irreps_mid = o3.Irreps([(self.irreps_in[i].mul, ir) for (i, _, _), ir
                                in zip(self.paths, self.path_irreps)])
        instructions = [(i, j, k, "uvu", True) for k, (i, j, _) in enumerate(self.paths)]
        with default_dtype(torch.float64):   # e3nn's constants exact to double precision
            return o3.TensorProduct(self.irreps_in, self.irreps_sh, irreps_mid, instructions,
                                    shared_weights=False, internal_weights=False)

    def forward(self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                sh: torch.Tensor, hidden: torch.Tensor, weight_map: torch.Tensor) -> list:
        """Messages summed at the receiving atoms, one ``(nodes, mul, d3)`` block per path.

        ``x`` (nodes, irreps_in.dim) is gathered at ``edge_src``; ``sh`` (E, irreps_sh.dim);
        per-edge weights are ``hidden @ weight_map`` (E, weight_numel), columns in path
        order, ``mul`` per path; the messages are summed over ``edge_dst``. Concatenated
        along ``mul`` in the order :attr:`order` the blocks have the layout of
        :attr:`irreps_out`."""
        n_nodes, n_edges = x.shape[0], edge_src.shape[0]
        slices = self.irreps_in.slices()
        blocks: list = [None] * len(self.paths)
        consts = self._constants(x.dtype, x.device)
        for g, (i, first, n_paths, k_total, cols) in enumerate(self.groups):
            mul, ir = self.irreps_in[i]
            coupling, expand = consts[g]
            xi = x[:, slices[i]].reshape(n_nodes, mul, ir.dim)[edge_src]        # (E, mul, d1)
            t = (sh @ coupling).reshape(n_edges, ir.dim, k_total)                # (E, d1, K)
            start, stop = self.group_columns[g]
            wmap = weight_map[:, start:stop]
            wmap = wmap.reshape(-1, n_paths, mul).transpose(1, 2) @ expand        # (H, mul, K)
            w = (hidden @ wmap.reshape(wmap.shape[0], -1)).reshape(n_edges, mul, k_total)
            msg = torch.bmm(xi, t) * w                                           # (E, mul, K)
            agg = torch.zeros(n_nodes, mul * k_total, dtype=x.dtype, device=x.device)
            agg = agg.index_add(0, edge_dst, msg.reshape(n_edges, -1)).reshape(n_nodes, mul, k_total)
            for p, (offset, d3) in enumerate(cols):
                blocks[first + p] = agg[:, :, offset:offset + d3]
        return blocks

    def forward_frozen(self, x: torch.Tensor, edge_src: torch.Tensor, edge_dst: torch.Tensor,
                       sh: torch.Tensor, hidden: torch.Tensor, weight_map: torch.Tensor) -> list:
        """:meth:`forward` for when autograd is off (``torch.no_grad``): the frozen pass of
        the diagnostic. Same arguments and result; the same numbers up to float rounding
        (to the bit on the shipped backbones in batches of 8, ``bench/bench_forward.py``).

        Where :meth:`forward` keeps the backward cheap, this keeps the per-edge tensors
        small. The per-edge weights are ``mul`` columns per path (``hidden @ weight_map``)
        rather than ``mul * K``; each path's weights are spread over its columns by an
        index. The edges are taken :data:`EDGE_CHUNK_FLOATS` message values at a time, so
        that the coupled product, its weighting and the scatter-sum stay in cache. Messages
        are laid out ``(edges, K, mul)``, ``mul`` innermost; a scalar input block
        (``d1 = 1``) is coupled by a broadcast product instead of a ``bmm``."""
        n_nodes, n_edges = x.shape[0], edge_src.shape[0]
        slices = self.irreps_in.slices()
        consts = self._constants(x.dtype, x.device)
        columns = self._column_paths(x.device)
        inputs, aggs = [], []
        for i, _, _, k_total, _ in self.groups:
            mul, ir = self.irreps_in[i]
            inputs.append(x[:, slices[i]].reshape(n_nodes, mul, ir.dim).transpose(1, 2))
            aggs.append(x.new_zeros(n_nodes, k_total * mul))
        widest = max((k_total * self.irreps_in[i].mul for i, _, _, k_total, _ in self.groups),
                     default=1)
        chunk = max(EDGE_CHUNK_FLOATS // widest, 1)
        for start in range(0, n_edges, chunk):
            edges = slice(start, start + chunk)
            src, dst, sh_c = edge_src[edges], edge_dst[edges], sh[edges]
            n_c = src.shape[0]
            weights = hidden[edges] @ weight_map                                  # (c, numel)
            for g, (i, _, n_paths, k_total, _) in enumerate(self.groups):
                mul, ir = self.irreps_in[i]
                xi = inputs[g][src]                                               # (c, d1, mul)
                t = (sh_c @ consts[g][0]).reshape(n_c, ir.dim, k_total).transpose(1, 2)
                msg = t * xi if ir.dim == 1 else torch.bmm(t, xi)                # (c, K, mul)
                w = weights[:, self.group_columns[g][0]:self.group_columns[g][1]]
                msg *= w.view(n_c, n_paths, mul).index_select(1, columns[g])
                aggs[g].index_add_(0, dst, msg.view(n_c, -1))
        blocks: list = [None] * len(self.paths)
        for g, (i, first, _, k_total, cols) in enumerate(self.groups):
            agg = aggs[g].view(n_nodes, k_total, -1).transpose(1, 2).contiguous()  # (N, mul, K)
            for p, (offset, d3) in enumerate(cols):
                blocks[first + p] = agg[:, :, offset:offset + d3]
        return blocks


class _Interaction(torch.nn.Module):
    """One NequIP interaction block (convolution + self-connection + gate)."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, target: o3.Irreps,
                 n_species: int, n_basis: int, radial_hidden: int, avg_num_neighbors: float,
                 act, gate: bool):
        super().__init__()
        self.avg_num_neighbors = avg_num_neighbors
        species_irreps = o3.Irreps(f"{n_species}x0e")
        if gate:
            scalars = o3.Irreps([(m, ir) for m, ir in target if ir.l == 0])
            gated = o3.Irreps([(m, ir) for m, ir in target if ir.l > 0])
            gates = o3.Irreps([(m, "0e") for m, _ in gated])
            acts = {1: act, -1: torch.tanh}
            self.gate = enn.Gate(scalars, [acts[ir.p] for _, ir in scalars],
                                 gates, [act] * len(gates), gated)
            block_out = self.gate.irreps_in
        else:
            self.gate = None
            block_out = target
        self.linear_1 = o3.Linear(irreps_in, irreps_in)
        self.tp = _EdgeTensorProduct(irreps_in, irreps_sh, block_out)
        # Radial MLP: hidden layers, then one output matrix read path by path (slicing the
        # small parameter instead of the per-edge weight tensor keeps the backward cheap).
        self.radial = enn.FullyConnectedNet([n_basis, radial_hidden, radial_hidden],
                                            torch.nn.functional.silu, out_act=True)
        self.radial_out = torch.nn.Parameter(torch.randn(radial_hidden, self.tp.weight_numel))
        self.linear_2 = o3.Linear(self.tp.irreps_out, block_out)
        self.self_connection = o3.FullyConnectedTensorProduct(irreps_in, species_irreps,
                                                              block_out)
        self.irreps_out = self.gate.irreps_out if gate else block_out

    def forward(self, h, species_onehot, edge_src, edge_dst, edge_sh, edge_basis):
        sc = self.self_connection(h, species_onehot)
        x = self.linear_1(h)
        hidden = self.radial(edge_basis) / math.sqrt(self.radial_out.shape[0])
        if torch.is_grad_enabled():   # training, forces: the backward-friendly product
            blocks = self.tp(x, edge_src, edge_dst, edge_sh, hidden, self.radial_out)
        else:
            blocks = self.tp.forward_frozen(x, edge_src, edge_dst, edge_sh, hidden,
                                            self.radial_out)
        out = self._mix(blocks, h.shape[0], 1.0 / math.sqrt(self.avg_num_neighbors)) + sc
        return self.gate(out) if self.gate is not None else out

    def _mix(self, blocks: list, n_nodes: int, factor: float) -> torch.Tensor:
        """``linear_2(factor * cat(blocks in tp.order))`` without forming the concatenation.

        The same-irrep path blocks are joined along ``mul`` and multiplied by the
        instruction's view of ``linear_2``'s weights, so the backward never fills a
        zero tensor of the full message width (e3nn's generated ``Linear`` slices its
        input once per instruction). :meth:`forward_reference` is the plain version."""
        ins_blocks, k = [], 0
        order = self.tp.order
        for mul, ir in self.tp.irreps_out:
            group, total = [], 0
            while total < mul:
                group.append(blocks[order[k]])
                total += blocks[order[k]].shape[1]
                k += 1
            ins_blocks.append(group[0] if len(group) == 1 else torch.cat(group, dim=1))
        outs: list = [None] * len(self.linear_2.irreps_out)
        for _, ins, w in self.linear_2.weight_views(yield_instruction=True):
            y = torch.einsum("nud,uw->nwd", ins_blocks[ins.i_in], w * (ins.path_weight * factor))
            outs[ins.i_out] = y if outs[ins.i_out] is None else outs[ins.i_out] + y
        ref = blocks[0]
        parts = []
        for (mul, ir), y in zip(self.linear_2.irreps_out, outs):
            if y is None:
                parts.append(ref.new_zeros(n_nodes, mul * ir.dim))
            else:
                parts.append(y.reshape(n_nodes, mul * ir.dim))
        return torch.cat(parts, dim=1)

    def forward_reference(self, h, species_onehot, edge_src, edge_dst, edge_sh, edge_basis):
        """The same block through e3nn's generic ``o3.TensorProduct`` ("uvu", per-edge
        weights) and ``o3.Linear``: slow, for tests of the hand-written path."""
        sc = self.self_connection(h, species_onehot)
        x = self.linear_1(h)
        hidden = self.radial(edge_basis) / math.sqrt(self.radial_out.shape[0])
        tp = self.tp.reference().to(dtype=h.dtype, device=h.device)
        weights = hidden @ self.radial_out
        msg = tp(x[edge_src], edge_sh, weights)
        agg = torch.zeros(h.shape[0], msg.shape[1], dtype=msg.dtype,
                          device=msg.device).index_add(0, edge_dst, msg)
        # reference output is in path order; reorder to tp.order (the simplified layout)
        sl = tp.irreps_out.slices()
        agg = torch.cat([agg[:, sl[k]] for k in self.tp.order], dim=1)
        out = self.linear_2(agg / math.sqrt(self.avg_num_neighbors)) + sc
        return self.gate(out) if self.gate is not None else out


class Backbone(torch.nn.Module):
    """NequIP-style backbone satisfying the backbone protocol (see module docstring).

    Parameters
    ----------
    config : BackboneConfig
    seed : int
        Seed of the weight initialization (required: no model without an explicit seed).
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``.
    """

    def __init__(self, config: BackboneConfig, seed: int, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an integer, got {seed!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.config = config
        self.seed = seed
        c = config
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            # Build in float64 so that e3nn's constants (coupling tensors, generators)
            # are exact to double precision; cast to the requested dtype afterwards.
            with default_dtype(torch.float64):
                n_species = len(c.species)
                self.register_buffer("species_index",
                                     torch.full((MAX_Z + 1,), -1, dtype=torch.long))
                for i, z in enumerate(c.species):
                    self.species_index[z] = i
                self.irreps_sh = o3.Irreps.spherical_harmonics(c.L)
                self.embedding = o3.Linear(o3.Irreps(f"{n_species}x0e"),
                                           o3.Irreps(f"{c.channels}x0e"))
                self.radial_basis = _BesselCutoff(c.r_max, c.n_basis, c.cutoff_p)
                act = ACTIVATIONS[c.activation]
                blocks = []
                irreps = o3.Irreps(f"{c.channels}x0e")
                hidden = hidden_irreps(c.channels, c.L)
                for layer in range(c.layers):
                    last = layer == c.layers - 1
                    target = o3.Irreps(f"{c.channels}x0e") if last else hidden
                    block = _Interaction(irreps, self.irreps_sh, target, n_species,
                                         c.n_basis, c.radial_hidden, c.avg_num_neighbors, act,
                                         gate=not last)
                    blocks.append(block)
                    irreps = block.irreps_out
                self.blocks = torch.nn.ModuleList(blocks)
                self.irreps_out = self.blocks[-2].irreps_out
                self.readout_1 = o3.Linear(irreps, o3.Irreps(f"{max(c.channels // 2, 1)}x0e"))
                self.readout_2 = o3.Linear(o3.Irreps(f"{max(c.channels // 2, 1)}x0e"),
                                           o3.Irreps("1x0e"))
                shift = c.species_shift or [c.energy_shift] * n_species
                scale = c.species_scale or [c.energy_scale] * n_species
                self.register_buffer("shift", torch.tensor(shift, dtype=torch.float64))
                self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        finally:
            torch.random.set_rng_state(gen_state)
        self.to(dtype)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``torch.nn.Module.load_state_dict``, also accepting the checkpoints of earlier
        versions, which stored the constant coupling tensors (``blocks.*.tp.cg_*``); they
        are rebuilt at construction and dropped here."""
        state_dict = {k: v for k, v in state_dict.items() if ".tp.cg_" not in k}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @property
    def dtype(self) -> torch.dtype:
        return self.shift.dtype

    @property
    def L(self) -> int:
        return self.config.L

    # -- layers (protocol: layers / layer / at_layer) ---------------------------------------

    @property
    def layers(self) -> tuple:
        """Names of the interaction blocks whose outputs carry ``l > 0`` features
        (``blocks.0`` .. ``blocks.{layers - 2}``; the last block is scalar-only)."""
        return tuple(f"blocks.{i}" for i in range(len(self.blocks) - 1))

    @property
    def layer(self) -> str:
        """The block :meth:`node_features` reads (the last one with ``l > 0``)."""
        return self.layers[-1]

    def at_layer(self, layer) -> "Backbone":
        """A backbone of this model reading block ``layer`` (an index into :attr:`layers`
        or its name): this model for the default block, else a :class:`BackboneLayer`."""
        index = _layer_index(self.layers, layer)
        if index == len(self.layers) - 1:
            return self
        return BackboneLayer(self, index)

    # -- graph ------------------------------------------------------------------------------

    def _species(self, numbers: torch.Tensor) -> torch.Tensor:
        idx = self.species_index[numbers]
        if (idx < 0).any():
            bad = sorted(set(numbers[idx < 0].tolist()))
            raise ValueError(f"atomic numbers {bad} are not among this backbone's species "
                             f"{self.config.species}")
        return idx

    def _edges(self, positions: torch.Tensor, batch: torch.Tensor):
        """Ordered pairs ``(src, dst)`` of distinct atoms of one configuration closer than
        ``r_max``, sorted by ``dst`` then ``src``, and ``r_src - r_dst``.

        Configurations of equal size laid out one after another (``batch`` is
        ``arange(m).repeat_interleave(n)``, the batch path) are searched one at a time,
        ``m n^2`` distances instead of the ``(m n)^2`` of all pairs of the batch; any
        other ``batch`` takes all pairs. Both give the same edges in the same order."""
        n_atoms = positions.shape[0]
        m = int(batch[-1]) + 1 if n_atoms else 0
        if m > 1 and n_atoms % m == 0:
            n = n_atoms // m
            if torch.equal(batch, torch.arange(m, device=batch.device).repeat_interleave(n)):
                per = positions.reshape(m, n, 3)
                dist = (per[:, None, :, :] - per[:, :, None, :]).norm(dim=-1)   # [g, dst, src]
                eye = torch.eye(n, dtype=torch.bool, device=positions.device)
                g, dst, src = (~eye & (dist < self.config.r_max)).nonzero(as_tuple=True)
                src, dst = g * n + src, g * n + dst
                return src, dst, positions[src] - positions[dst]
        diff = positions[None, :, :] - positions[:, None, :]  # [dst, src] -> r_src - r_dst
        dist = diff.norm(dim=-1)
        same = batch[:, None] == batch[None, :]
        eye = torch.eye(len(batch), dtype=torch.bool, device=positions.device)
        mask = same & ~eye & (dist < self.config.r_max)
        dst, src = mask.nonzero(as_tuple=True)
        vec = positions[src] - positions[dst]
        return src, dst, vec

    def _features(self, positions, numbers, batch, upto: int):
        species = self._species(numbers)
        onehot = torch.nn.functional.one_hot(species, len(self.config.species)).to(positions.dtype)
        src, dst, vec = self._edges(positions, batch)
        r = vec.norm(dim=-1)
        if (r < 1e-6).any():
            raise ValueError("two atoms of one configuration coincide (zero-length edge)")
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        basis = self.radial_basis(r)
        h = self.embedding(onehot)
        for block in self.blocks[:upto]:
            h = block(h, onehot, src, dst, sh, basis)
        return h, onehot, species, (src, dst, sh, basis)

    # -- protocol ---------------------------------------------------------------------------

    def node_features(self, positions: torch.Tensor, numbers: torch.Tensor,
                      batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Per-atom features ``(n_atoms, irreps_out.dim)`` of the last block with ``l > 0``."""
        positions, numbers, batch = self._inputs(positions, numbers, batch)
        h, *_ = self._features(positions, numbers, batch, upto=len(self.blocks) - 1)
        return h

    def atomic_energies(self, positions, numbers, batch=None) -> torch.Tensor:
        positions, numbers, batch = self._inputs(positions, numbers, batch)
        h, onehot, species, (src, dst, sh, basis) = self._features(
            positions, numbers, batch, upto=len(self.blocks) - 1)
        h = self.blocks[-1](h, onehot, src, dst, sh, basis)
        e = self.readout_2(torch.nn.functional.silu(self.readout_1(h)))[:, 0]
        return e * self.scale[species].to(e.dtype) + self.shift[species].to(e.dtype)

    def features_and_energy(self, positions: torch.Tensor, numbers: torch.Tensor,
                            batch: Optional[torch.Tensor] = None, layer: Optional[int] = None):
        """``(node_features, energy)`` from one pass: what the diagnostic reads, at the cost
        of one energy evaluation. The features are the output of block ``layer`` (an index
        into :attr:`layers`; default the last, the input of the scalar-only block)."""
        positions, numbers, batch = self._inputs(positions, numbers, batch)
        read = len(self.blocks) - 2 if layer is None else _layer_index(self.layers, layer)
        h, onehot, species, (src, dst, sh, basis) = self._features(
            positions, numbers, batch, upto=read + 1)
        out = h
        for block in self.blocks[read + 1:]:
            out = block(out, onehot, src, dst, sh, basis)
        e = self.readout_2(torch.nn.functional.silu(self.readout_1(out)))[:, 0]
        e = e * self.scale[species].to(e.dtype) + self.shift[species].to(e.dtype)
        n = int(batch.max()) + 1 if batch.numel() else 0
        return h, torch.zeros(n, dtype=e.dtype, device=e.device).index_add(0, batch, e)

    def energy(self, positions: torch.Tensor, numbers: torch.Tensor,
               batch: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Total energy in eV: a scalar, or ``(n_graphs,)`` when ``batch`` is given."""
        e_atom = self.atomic_energies(positions, numbers, batch)
        if batch is None:
            return e_atom.sum()
        n = int(batch.max()) + 1 if batch.numel() else 0
        out = torch.zeros(n, dtype=e_atom.dtype, device=e_atom.device)
        return out.index_add(0, batch, e_atom)

    def energy_and_forces(self, positions, numbers, batch=None, create_graph: bool = False):
        """``(E, F)`` with :math:`F = -\\partial E / \\partial r` (eV, eV/A)."""
        positions = positions.detach().requires_grad_(True)
        energy = self.energy(positions, numbers, batch)
        (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=create_graph)
        return energy, -grad

    def _inputs(self, positions, numbers, batch):
        if not isinstance(positions, torch.Tensor):
            positions = torch.as_tensor(positions)
        positions = positions.to(self.dtype)
        numbers = torch.as_tensor(numbers, dtype=torch.long, device=positions.device)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ValueError(f"positions must have shape (n_atoms, 3), got {tuple(positions.shape)}")
        if numbers.shape != (positions.shape[0],):
            raise ValueError(f"numbers must have shape ({positions.shape[0]},), "
                             f"got {tuple(numbers.shape)}")
        if batch is None:
            batch = torch.zeros(positions.shape[0], dtype=torch.long, device=positions.device)
        return positions, numbers, batch


def _layer_index(layers, layer) -> int:
    """Index of ``layer`` (an index or a name) in ``layers``; ``ValueError`` otherwise."""
    if isinstance(layer, str):
        if layer not in layers:
            raise ValueError(f"no layer named {layer!r}; the layers are {list(layers)}")
        return list(layers).index(layer)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer {layer!r}: the model has {len(layers)} layers with l > 0 "
                         f"features ({list(layers)})")
    return layer % len(layers)


class BackboneLayer:
    """The features of an earlier interaction block of a :class:`Backbone` (the model is
    shared, not copied): a protocol object for the per-layer profile. Its energy is the
    whole model's."""

    def __init__(self, backbone: Backbone, index: int):
        self.backbone = backbone
        self.index = int(index)
        self.irreps_out = backbone.blocks[self.index].irreps_out
        self.config = backbone.config

    layers = property(lambda self: self.backbone.layers)
    layer = property(lambda self: self.backbone.layers[self.index])
    dtype = property(lambda self: self.backbone.dtype)
    L = property(lambda self: o3.Irreps(self.irreps_out).lmax)
    seed = property(lambda self: self.backbone.seed)
    metadata = property(lambda self: getattr(self.backbone, "metadata", {}))

    def at_layer(self, layer):
        return self.backbone.at_layer(layer)

    def parameters(self):
        return self.backbone.parameters()

    def to(self, device):
        self.backbone.to(device)
        return self

    def eval(self):
        self.backbone.eval()
        return self

    def node_features(self, positions, numbers, batch=None):
        positions, numbers, batch = self.backbone._inputs(positions, numbers, batch)
        h, *_ = self.backbone._features(positions, numbers, batch, upto=self.index + 1)
        return h

    def energy(self, positions, numbers, batch=None):
        return self.backbone.energy(positions, numbers, batch)

    def features_batch(self, positions, numbers, with_energy=True):
        """Features of this block and the model's energy from one pass."""
        m, n_atoms, _ = positions.shape
        batch = torch.arange(m, device=positions.device).repeat_interleave(n_atoms)
        h, e = self.backbone.features_and_energy(positions.reshape(-1, 3), numbers.repeat(m),
                                                 batch, layer=self.index)
        return h.reshape(m, n_atoms, -1), (e if with_energy else None)

    def __repr__(self):
        return f"BackboneLayer({self.layer!r}, irreps_out={self.irreps_out})"
