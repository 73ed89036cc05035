"""Mapping a layer's weights to crossbar conductances, and back.

A layer ``y = W x + b`` (``W`` of shape (out, in), torch layout) becomes a
*logical* conductance matrix with one row per input plus one bias row, cut
into physical tiles of at most ``cfg.tile`` = (rows, columns).

Schemes (`MappingScheme`)
-------------------------
``differential``
    Output ``o`` uses two columns, ``2o`` (G+) and ``2o+1`` (G-):
    ``G+ = g_min + alpha max(w, 0)``, ``G- = g_min + alpha max(-w, 0)``, so
    ``w = (G+ - G-) / alpha`` and the unused device of each pair sits at
    ``g_min``. A tile holds ``columns // 2`` outputs.
``reference``
    One column per output, ``G = g_mid + alpha w`` with ``g_mid`` the middle
    of the window, and one reference column at ``g_mid`` as the last column
    of every tile: ``w = (G - G_ref) / alpha``. A tile holds ``columns - 1``
    outputs.

Scale: per layer, ``max |w|`` over the weights and the bias (in input units,
below) maps to the full window: ``alpha = (g_max - g_min) / max|w|``
(differential) or ``(g_max - g_min) / (2 max|w|)`` (reference).

Inputs ``x`` drive the word lines at ``v = x V_read / input_scale`` (inputs
in ``[0, input_scale]`` use ``[0, V_read]``; negative inputs, negative read
voltages: ``[-input_scale, input_scale]`` reads at ``[-V_read, V_read]``). The bias row is driven at the
fixed voltage ``V_read``; it stores ``b / input_scale`` so that its current
decodes to ``b``. Outputs: the column currents combined per scheme (pairs
subtracted, or the reference subtracted), summed over row tiles (partial
sums), times ``input_scale / (alpha V_read)`` to return to weight units.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np

from ._coerce import Choice, shape_of, where_not_finite
from .exceptions import ParameterError
from ._docfields import document_fields

__all__ = ["MappingScheme", "Tile", "LayerMapping", "map_layer", "check_layer"]


class MappingScheme(Choice):
    """How a signed weight is stored in non-negative conductances."""

    DIFFERENTIAL = "differential"
    REFERENCE = "reference"


@document_fields
@dataclass(frozen=True, eq=False)
class Tile:
    """One physical array of a mapped layer."""

    rows: tuple
    """(start, stop) of the logical rows (inputs, then the bias row) it holds."""
    outputs: tuple
    """(start, stop) of the layer outputs it computes."""
    target: np.ndarray
    """Target small-signal conductances, S, (tile rows, tile columns)."""

    @property
    def shape(self):
        """(word lines, bit lines) of the tile: its ``target``'s shape."""
        return self.target.shape


@document_fields
@dataclass(frozen=True, eq=False)
class LayerMapping:
    """A layer mapped to tiles of target conductances.

    Use `effective_weights` to turn programmed conductances back into
    weights, `input_voltages` / `decode` around a tile-level MVM.
    """

    scheme: MappingScheme
    """Differential pairs or a reference column."""
    in_features: int
    """Inputs of the layer."""
    out_features: int
    """Outputs of the layer."""
    has_bias: bool
    """Whether the last logical row is a bias row driven at V_read."""
    alpha: float
    """Scale, S per weight unit."""
    g_min: float
    """Bottom of the conductance window, S."""
    g_max: float
    """Top of the conductance window, S."""
    v_read: float
    """Read voltage, V: input ``input_scale`` and the bias row are driven at it."""
    input_scale: float
    """Input magnitude that maps to V_read."""
    tiles: List[Tile]
    """Physical arrays, row tiles of one output block adjacent."""

    @property
    def n_devices(self):
        """Devices over all tiles (reference columns included)."""
        return int(sum(t.target.size for t in self.tiles))

    @property
    def g_mid(self):
        """The middle of the window, S: a reference column's conductance, and
        the weight 0 of the reference scheme."""
        return 0.5 * (self.g_min + self.g_max)

    def input_voltages(self, x):
        """(B, in) inputs -> (B, rows) logical word-line voltages, V (bias row last)."""
        x = as_float_array(x, "x", f"(B, {self.in_features})")  # a tensor that requires grad too
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            # one input too many was read as the bias row (and the bias dropped)
            raise ParameterError(f"x has shape {x.shape}; this layer takes {self.in_features} input features "
                                 f"(last axis), as its weight's (out, in) = ({self.out_features}, "
                                 f"{self.in_features}) says.")
        if not np.all(np.isfinite(x)):  # passed on as NaN read voltages (`mvm` refuses them)
            raise ParameterError(f"x {where_not_finite(x)}; give finite inputs (NaN inputs mostly come from an "
                                 "upstream layer or a data file with missing values).")
        v = x * (self.v_read / self.input_scale)
        if self.has_bias:
            v = np.concatenate([v, np.full(v.shape[:-1] + (1,), self.v_read)], axis=-1)
        return np.ascontiguousarray(v)

    def tile_outputs(self, tile_index, currents):
        """Column currents (..., columns) of tile ``tile_index`` -> (...,
        its outputs), A."""
        import operator

        try:
            k = operator.index(tile_index)
        except TypeError:
            k = None
        if k is None or not -len(self.tiles) <= k < len(self.tiles):
            raise ParameterError(f"tile_index {tile_index!r}: this layer maps to {len(self.tiles)} tiles; give an "
                                 f"integer in [0, {len(self.tiles)}).")
        columns = self.tiles[k].shape[1]
        if not (isinstance(currents, np.ndarray) and currents.dtype == np.float64):
            currents = as_float_array(currents, "currents", f"(..., {columns})")
        if currents.ndim < 1 or currents.shape[-1] != columns:
            # three currents of a four-column tile gave one output, five a bare broadcast error
            raise ParameterError(f"currents has shape {currents.shape}; tile {k} has {columns} columns: give "
                                 f"(..., {columns}) column currents in amperes.")
        if self.scheme is MappingScheme.DIFFERENTIAL:
            return currents[..., 0::2] - currents[..., 1::2]
        return currents[..., :-1] - currents[..., -1:]

    def decode(self, y_current):
        """Combined output currents, A -> weight units."""
        if not isinstance(y_current, np.ndarray):  # a list was a bare TypeError
            y_current = as_float_array(y_current, "y_current", "(..., out) amperes")
        return y_current * (self.input_scale / (self.alpha * self.v_read))

    def effective_weights(self, tile_g):
        """Weights and bias the conductances ``tile_g`` implement (linear read).

        ``tile_g``: one array per tile, (..., rows, columns), any leading
        batch shape (e.g. n transfers). Returns ``(W, b)`` of shapes
        (..., out, in) and (..., out) (``b`` is None without a bias row).
        """
        one = isinstance(tile_g, np.ndarray) or hasattr(tile_g, "detach")  # an array or a tensor
        if not one:
            try:
                tile_g = list(tile_g)  # a generator too (its len() was a bare TypeError)
            except TypeError:
                raise ParameterError(f"tile_g is of type {type(tile_g).__name__}; give a list of one array per tile, "
                                     "in the order of `tiles`.") from None
        if one or len(tile_g) != len(self.tiles):
            got = f"one {tile_g.ndim}-D array" if one else f"{len(tile_g)} arrays"
            raise ParameterError(f"tile_g holds {got}; this layer maps to {len(self.tiles)} tiles: give a list of "
                                 "one array per tile, in the order of `tiles` (a missing tile read as zero weights).")
        tile_g = [as_float_array(g, f"tile_g[{k}]", f"{t.shape} (rows, columns)")  # tensors that require grad too
                  for k, (g, t) in enumerate(zip(tile_g, self.tiles))]
        lead = tile_g[0].shape[:-2]
        for k, (t, g) in enumerate(zip(self.tiles, tile_g)):
            if g.ndim < 2 or g.shape[-2:] != t.shape or g.shape[:-2] != lead:
                raise ParameterError(f"tile_g[{k}] has shape {g.shape}; tile {k} is {t.shape} (rows, columns), "
                                     f"after the leading shape {lead} of tile_g[0]. Pass the arrays `tiles` "
                                     "describes (a transposed one was numpy's broadcast error).")
        n_rows = self.in_features + int(self.has_bias)
        W_aug = np.zeros(lead + (self.out_features, n_rows))
        for t, g in zip(self.tiles, tile_g):
            if self.scheme is MappingScheme.DIFFERENTIAL:
                d = g[..., 0::2] - g[..., 1::2]
            else:
                d = g[..., :-1] - g[..., -1:]
            W_aug[..., t.outputs[0]:t.outputs[1], t.rows[0]:t.rows[1]] = np.swapaxes(d, -1, -2) / self.alpha
        if self.has_bias:
            return W_aug[..., :-1], W_aug[..., -1] * self.input_scale
        return W_aug, None

    def target_weights(self):
        """Weights and bias encoded by the targets (ideal programming)."""
        return self.effective_weights([t.target for t in self.tiles])


def as_float_array(a, name, expected):
    """``a`` as a float64 array; a torch tensor (also one that requires grad,
    or lives on a GPU) is detached and copied to the host first. Anything
    non-numeric is a `ParameterError` naming ``name`` and the ``expected``
    layout."""
    from ._coerce import as_real_array

    return as_real_array(a, name, expected, units="real numbers")


def check_layer(weight, bias):
    """Validate a layer; returns float64 ``(W, b)`` (``b`` may be None)."""
    W = as_float_array(weight, "weight", "(out, in) (torch layout)")
    if W.size == 0:  # "Reshape it" cannot help an empty layer
        empty = f"a layer with no {'outputs' if W.shape[0] < 1 else 'inputs'}" if W.ndim == 2 else "an empty weight"
        raise ParameterError(f"weight has shape {W.shape}: {empty} has nothing to program; give an (out_features, "
                             "in_features) array with at least one output and one input.")
    if W.ndim != 2:
        raise ParameterError(
            f"weight has shape {W.shape}; expected a 2-D (out_features, in_features) array "
            "(torch Linear layout). Reshape it, or pass layer.weight.detach().numpy()."
        )
    if not np.all(np.isfinite(W)):
        raise ParameterError(f"weight {where_not_finite(W)}; only finite weights can be mapped. NaN or "
                             "inf weights mostly come from a training run that diverged (lower the "
                             "learning rate, clip the gradients); check the trained layer, or replace "
                             "them (np.nan_to_num) if that is intended.")
    b = None
    from .programming import TransferConfig

    if isinstance(bias, TransferConfig):  # transfer(W, cfg): "bias must be ... got TransferConfig", no hint
        raise ParameterError("bias is a TransferConfig: the configuration goes third, after the bias "
                             "(xs.transfer(weight, None, cfg) for a layer without one; or cfg=cfg).")
    if bias is not None:
        b = as_float_array(bias, "bias", f"({W.shape[0]},)")
        if b.shape != (W.shape[0],):
            # a weight given (in, out) blamed the bias alone
            hint = (f" The weight may be transposed: layers take it (out, in), as torch.nn.Linear.weight; "
                    f"give weight.T, of shape {W.shape[::-1]}." if W.ndim == 2 and b.shape == (W.shape[1],) else "")
            raise ParameterError(
                f"bias has shape {b.shape}; expected ({W.shape[0]},) to match weight {W.shape}, or None.{hint}"
            )
        if not np.all(np.isfinite(b)):
            raise ParameterError(f"bias {where_not_finite(b)}; only finite biases can be mapped. NaN or inf "
                                 "biases mostly come from a training run that diverged; check the trained "
                                 "layer, or replace them (np.nan_to_num) if that is intended.")
    return W, b


MAP_BYTES_PER_WEIGHT = 24
"""What `map_layer` holds per weight besides its tiles: the float64 copy of
the weight, the copy with the bias column, and ``|W|``."""


MAP_BYTES_PER_TILE = 512
"""What each `Tile` holds besides its conductances: the object, its ndarray
header, tuples and list entry (measured: 380-500 B). With (2, 2) tiles a
1024 x 1024 layer took 5.5 times an estimate without it."""


MAX_TILES = 1 << 20
"""Tiles a layer may map to: the read-noise streams of tile ``k`` are keyed
``MAX_TILES + k`` (`xbarsim.transfer`), apart from its programming streams,
keyed ``k``."""


def _outputs_per_tile(cfg, tile=None):
    """Outputs a tile of ``cfg.tile`` (or of ``tile``) holds: a pair of
    columns each under ``"differential"``, a column each plus the tile's
    reference column under ``"reference"``."""
    cols_t = int((cfg.tile if tile is None else tile)[1])
    return cols_t // 2 if cfg.mapping is MappingScheme.DIFFERENTIAL else cols_t - 1


def _first_tile_shape(shape, has_bias, cfg):
    """(rows, columns) of the first tile of an (out, in) layer: the largest
    both ways, whose solves (programming and MVM) set the floor."""
    out_f, in_f = (int(n) for n in shape)
    outputs = min(_outputs_per_tile(cfg), out_f)
    columns = 2 * outputs if cfg.mapping is MappingScheme.DIFFERENTIAL else outputs + 1
    return min(int(cfg.tile[0]), in_f + bool(has_bias)), columns


def device_count(shape, has_bias, cfg):
    """Devices the tiles of an (out, in) layer take under ``cfg``'s mapping
    and tile size: two per weight under ``"differential"``, one per weight
    and a reference column per tile under ``"reference"``."""
    out_f, in_f = (int(n) for n in shape)
    rows = in_f + bool(has_bias)
    if cfg.mapping is MappingScheme.DIFFERENTIAL:
        return rows * 2 * out_f
    return rows * (out_f + -(-out_f // _outputs_per_tile(cfg)))


def tile_count(shape, has_bias, cfg, tile=None):
    """Tiles an (out, in) layer is cut into under ``cfg`` (with ``tile`` in
    place of ``cfg.tile`` when given)."""
    out_f, in_f = (int(n) for n in shape)
    rows_t = int((cfg.tile if tile is None else tile)[0])
    return -(-(in_f + bool(has_bias)) // rows_t) * -(-out_f // _outputs_per_tile(cfg, tile))


def _check_tile_count(shape, has_bias, cfg):
    """Refuse a layer of ``shape`` that makes more than `MAX_TILES` tiles
    (None, or a shape `check_layer` refuses: its message)."""
    if shape is None or len(shape) != 2 or min(shape) < 1:
        return
    n = tile_count(shape, has_bias, cfg)
    if n > MAX_TILES:
        # a tile that fits (the default, 64 x 64, was offered)
        bigger, fits = tuple(int(t) for t in cfg.tile), n
        while fits > MAX_TILES:
            bigger = (2 * bigger[0], 2 * bigger[1])
            fits = tile_count(shape, has_bias, cfg, bigger)
        raise ParameterError(f"a {shape[0]} x {shape[1]} layer on {cfg.tile[0]} x {cfg.tile[1]} tiles makes {n} "
                             f"tiles; at most {MAX_TILES} (2**20) keep their random streams apart. Give larger "
                             f"tiles (tile={bigger} makes {fits}).")


def _check_mapping_memory(weight, bias, cfg):
    """Refuse a layer whose mapping cannot fit, before it is converted (a
    2048 x 2048 float32 layer took 510 MiB through `transfer` with 256 MiB
    available, no check on the way)."""
    from ._memory import require

    shape = shape_of(weight)  # an array or tensor; a list is as large as its copy already
    if shape is None or len(shape) != 2:
        return  # check_layer says what is wrong with it
    devices = device_count(shape, bias is not None, cfg)
    tiles = tile_count(shape, bias is not None, cfg)
    require(MAP_BYTES_PER_WEIGHT * float(np.prod(shape, dtype=np.float64)) + 8.0 * devices
            + MAP_BYTES_PER_TILE * float(tiles),
            f"mapping a {shape[0]} x {shape[1]} layer to {devices} devices",
            "map a smaller layer (or split it into several and transfer each)")


WEIGHT_SCALE_RANGE = (1e-300, 1e300)
"""Range of the per-layer scale ``max |w|`` (weights and ``bias / input_scale``)
that `map_layer` accepts. Its ratio to the conductance window is the scale
``alpha``; outside this range ``alpha`` (or its inverse, which converts the
output currents back to weight units) overflows or underflows float64 and the
targets or the outputs become inf / NaN / 0."""


def _check_weight_scale(wmax, W, b, s_in):
    """Refuse a layer whose scale ``max |w|`` cannot be mapped to conductances
    and back in float64 (`WEIGHT_SCALE_RANGE`); all-zero layers are fine."""
    lo, hi = WEIGHT_SCALE_RANGE
    hint = ("rescale the layer: map W / c and b / c, then multiply the outputs by c (e.g. c = max |w|)")
    if not np.isfinite(wmax):  # W and b are finite: b / input_scale overflowed
        raise ParameterError(
            f"bias / input_scale overflows (max |b| = {float(np.max(np.abs(b))):.3g}, input_scale = {s_in:.3g}): "
            f"the bias row stores b / input_scale. Raise TransferConfig.input_scale, or {hint}.")
    if wmax != 0.0 and not lo <= wmax <= hi:
        raise ParameterError(
            f"the weight scale max |w| = {wmax:.3g} (weights and bias / input_scale) is outside [{lo:g}, {hi:g}]: "
            "the conductance scale alpha = window / max |w| and the conversion of output currents back to "
            f"weight units would overflow or underflow double precision (inf or NaN targets, inf or 0 "
            f"outputs). {hint[0].upper() + hint[1:]}.")


def map_layer(weight, bias, cfg) -> LayerMapping:
    """Map ``y = W x + b`` to tiles of target conductances.

    Parameters
    ----------
    weight : array_like, (out, in)
    bias : array_like (out,) or None
    cfg : TransferConfig
        Mapping scheme, window, tile size, V_read, input scale.

    Returns
    -------
    LayerMapping

    Notes
    -----
    The largest ``|w|`` (bias over ``input_scale`` included) maps to the
    window: ``alpha = (g_max - g_min) / max|w|`` per weight unit under
    ``"differential"``, half that under ``"reference"``, where every weight
    sits around the window's middle. An all-zero layer has no scale of its
    own and is mapped with ``max|w| = 1``: its devices all sit at ``g_min``
    (at the middle under ``"reference"``), and its outputs carry their
    programming errors divided by that ``alpha``.

    Examples
    --------
    >>> import numpy as np, xbarsim as xs
    >>> m = xs.mapping.map_layer(np.ones((8, 2)), np.zeros(8), xs.TransferConfig())
    >>> [t.shape for t in m.tiles]
    [(3, 16)]
    """
    from .programming import TransferConfig

    if not isinstance(cfg, TransferConfig):
        raise ParameterError(f"cfg must be an xbarsim.TransferConfig; got {type(cfg).__name__}.")
    cfg.check_mapping_band()
    shape = shape_of(weight)  # an array's or tensor's: checked before it is copied
    _check_tile_count(shape, bias is not None, cfg)
    _check_mapping_memory(weight, bias, cfg)
    W, b = check_layer(weight, bias)
    if shape is None:  # a list's, once converted
        _check_tile_count(W.shape, b is not None, cfg)
    out_f, in_f = W.shape
    # the first tile is the largest both ways: its solves (programming and
    # MVM) set the floor. Checked before the tiles are made (after them, a
    # 4096^2 layer was refused for its solve_tol 2.8 s late)
    cfg.check_array(_first_tile_shape(W.shape, b is not None, cfg))
    s_in = float(cfg.input_scale)
    with np.errstate(over="ignore", under="ignore"):
        W_aug = W if b is None else np.concatenate([W, (b / s_in)[:, None]], axis=1)
    g_min, g_max = cfg.g_window
    wmax = float(np.max(np.abs(W_aug)))
    _check_weight_scale(wmax, W, b, s_in)
    if wmax == 0.0:
        wmax = 1.0
    rows_t = int(cfg.tile[0])
    scheme = cfg.mapping
    per_tile = _outputs_per_tile(cfg)  # TransferConfig refuses tiles of under 2 columns
    if scheme is MappingScheme.DIFFERENTIAL:
        alpha = (g_max - g_min) / wmax
    else:
        alpha = (g_max - g_min) / (2.0 * wmax)
    v_read = float(cfg.write_verify.v_read)
    with np.errstate(over="ignore", under="ignore", divide="ignore"):
        to_weight = s_in / (alpha * v_read)  # `LayerMapping.decode`: output current, A -> weight units
    if not (np.isfinite(alpha) and alpha > 0 and np.isfinite(to_weight) and to_weight > 0):
        raise ParameterError(
            f"the layer's scale cannot be represented: alpha = {alpha:.3g} S per weight unit (window "
            f"{g_max - g_min:.3g} S over max |w| = {wmax:.3g}) and input_scale = {s_in:.3g} convert output "
            f"currents back to weight units by a factor {to_weight:.3g}, which must be finite and > 0. Rescale "
            "the layer (W / c, b / c, outputs times c) or bring input_scale nearer 1.")
    n_rows = W_aug.shape[1]
    tiles = []
    for o0 in range(0, out_f, per_tile):
        o1 = min(o0 + per_tile, out_f)
        for r0 in range(0, n_rows, rows_t):
            r1 = min(r0 + rows_t, n_rows)
            w = W_aug[o0:o1, r0:r1].T  # (rows, outputs)
            if scheme is MappingScheme.DIFFERENTIAL:
                g = np.empty((r1 - r0, 2 * (o1 - o0)))
                g[:, 0::2] = g_min + alpha * np.maximum(w, 0.0)
                g[:, 1::2] = g_min + alpha * np.maximum(-w, 0.0)
            else:
                g_mid = 0.5 * (g_min + g_max)
                g = np.empty((r1 - r0, (o1 - o0) + 1))
                g[:, :-1] = g_mid + alpha * w
                g[:, -1] = g_mid
            if not np.all(np.isfinite(g)):  # cannot happen past _check_weight_scale; never program it
                raise ParameterError(f"the weight scale alpha = {alpha:.3g} S gives non-finite target "
                                     "conductances; rescale the layer (W / c, b / c, outputs times c).")
            tiles.append(Tile(rows=(r0, r1), outputs=(o0, o1), target=np.ascontiguousarray(g)))
    return LayerMapping(
        scheme=scheme,
        in_features=in_f,
        out_features=out_f,
        has_bias=b is not None,
        alpha=float(alpha),
        g_min=float(g_min),
        g_max=float(g_max),
        v_read=v_read,
        input_scale=s_in,
        tiles=tiles,
    )
