"""Lazy Adam: thinc's Adam that updates only the rows of the hashed tables a
batch touched.

thinc's Adam updates every weight at every step. A batch of short texts
reads a few thousand rows of a hashed table (thinc's HashEmbed `E`,
SparseLinear `W`), and the dense update of the millions of others is the
largest fixed cost of a training step. `spacy_rnn.LazyAdam.v1` updates the
parameters named in `lazy_params` row by row, as torch's SparseAdam does,
and every other parameter with thinc's dense Adam: the torch modules'
weights have dotted names (`rnn.weight_ih_l0`), never in `lazy_params`.

Rows: axis 0 of a 2-D parameter (HashEmbed's `E` is (rows, width), one row
per hash bucket); each entry of a 1-D one (SparseLinear's `W` is flat and
class-major, W[c * length + bucket], so a bucket's weights are `length` apart
and the optimizer, which sees only the array, takes each weight as a row). A
row is touched when its gradient has a nonzero entry: a row no token or
n-gram of the batch hashed to has none. At each step:

- untouched rows keep their weights and both Adam moments bit for bit: no
  weight decay, no momentum drift;
- touched rows get thinc's Adam step, bias-corrected by the parameter's step
  count as in the dense update, so a step that touches every row is exactly
  thinc's dense step (thinc's Linear and Softmax also name their weights `W`:
  one row per output, each touched wherever the batch has a loss for it);
- L2, added to the gradient or as weight decay (`L2_is_weight_decay`),
  applies to touched rows only;
- gradient clipping scales the touched rows' gradient down to norm
  `grad_clip` when its L2 norm is larger. That norm is the whole gradient's,
  as untouched rows have none, except that with L2 added to the gradient it
  counts the L2 term of touched rows only, where thinc's counts every row's;
- weight averaging (`use_averages`) is thinc's: at every step the average
  of every row moves toward the row's current weights, an untouched row's
  toward its unchanged ones. It is computed lazily and exactly: a row's
  average is brought up to date when a step touches the row, and every row's
  when the parameter's average is read (`optimizer.averages[key]`, as
  spaCy's `nlp.use_params(optimizer.averages)` does).
"""
from typing import Dict, List, Sequence, cast

import numpy

from thinc.api import Optimizer, registry
from thinc.backends import get_array_ops
from thinc.optimizers import ADAM_DEFAULTS, FloatOrSeq, KeyT
from thinc.types import FloatsXd, Ints1d

MAX_AVERAGE_DECAY = 0.9999  # thinc's Ops.update_averages caps its decay at this


@registry.optimizers("spacy_rnn.LazyAdam.v1")
def create_lazy_adam(
    learn_rate: FloatOrSeq = ADAM_DEFAULTS["learn_rate"],
    *,
    L2: FloatOrSeq = ADAM_DEFAULTS["L2"],
    beta1: FloatOrSeq = ADAM_DEFAULTS["beta1"],
    beta2: FloatOrSeq = ADAM_DEFAULTS["beta2"],
    eps: FloatOrSeq = ADAM_DEFAULTS["eps"],
    grad_clip: FloatOrSeq = ADAM_DEFAULTS["grad_clip"],
    L2_is_weight_decay: bool = cast(bool, ADAM_DEFAULTS["L2_is_weight_decay"]),
    use_averages: bool = True,
    lazy_params: List[str] = ["E", "W"],
) -> "LazyAdam":
    """thinc's Adam.v1, with the parameters named in `lazy_params` (thinc's
    HashEmbed `E` and SparseLinear `W` by default) updated lazily."""
    return LazyAdam(
        learn_rate, L2=L2, beta1=beta1, beta2=beta2, eps=eps, grad_clip=grad_clip,
        L2_is_weight_decay=L2_is_weight_decay, use_averages=use_averages, lazy_params=lazy_params,
    )


class LazyAdam(Optimizer):
    """thinc's Optimizer (Adam, with its schedules) that updates only the
    touched rows of the parameters named in `lazy_params`."""

    def __init__(self, learn_rate: FloatOrSeq, *, lazy_params: Sequence[str] = ("E", "W"), **adam_settings):
        super().__init__(learn_rate, use_radam=False, **adam_settings)
        self.lazy_params = set(lazy_params)
        if self.averages is not None:
            self.averages = LazyAverages()

    def __call__(self, key: KeyT, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        if key[1] not in self.lazy_params or len(gradient) < 1:
            return super().__call__(key, weights, gradient, lr_scale=lr_scale)
        ops = get_array_ops(weights)
        table, table_gradient = as_table(weights), as_table(gradient)
        rows = touched_rows(ops, table_gradient)
        self.nr_update[key] += 1
        step = self.nr_update[key]
        if key not in self.mom1:
            self.mom1[key] = ops.alloc1f(weights.size)
            self.mom2[key] = ops.alloc1f(weights.size)
        mom1, mom2 = self.mom1[key].reshape(table.shape), self.mom2[key].reshape(table.shape)
        row_weights, row_gradient = table[rows], table_gradient[rows]
        previous = row_weights.copy() if self.averages is not None else None
        if self.L2 != 0 and not self.L2_is_weight_decay:
            row_gradient += self.L2 * row_weights
        if self.grad_clip:
            row_gradient = ops.clip_gradient(row_gradient, self.grad_clip)
        learn_rate = self.learn_rate * (1.0 - self.b2**step) ** 0.5 / (1.0 - self.b1**step)
        shape = row_weights.shape
        row_weights, _, row_mom1, row_mom2 = ops.adam(
            row_weights.ravel(), row_gradient.ravel(), mom1[rows].ravel(), mom2[rows].ravel(),
            self.b1, self.b2, self.eps, learn_rate * lr_scale,
        )
        if self.L2 != 0 and self.L2_is_weight_decay:
            row_weights -= lr_scale * self.learn_rate * self.L2 * row_weights
        table[rows] = row_weights.reshape(shape)
        mom1[rows], mom2[rows] = row_mom1.reshape(shape), row_mom2.reshape(shape)
        table_gradient[rows] = 0
        if self.averages is not None:
            self.averages.average_step(key, weights, rows, previous, step)
        return table.reshape(weights.shape), table_gradient.reshape(gradient.shape)


class LazyAverages(dict):
    """A LazyAdam's `averages` (thinc's: parameter key -> average weights).
    The average of a lazily updated row is brought up to date when a step
    touches the row, and those of all rows when the parameter's average is
    read. Since an untouched row's weights stay as they are, thinc's
    averaging steps in between amount to moving its average toward them by
    the product of those steps' decays."""

    def __init__(self):
        super().__init__()
        self.tables: Dict[KeyT, FloatsXd] = {}  # the lazily updated weights, as_table's view
        self.steps: Dict[KeyT, int] = {}  # the step of the last update
        self.averaged_at: Dict[KeyT, Ints1d] = {}  # per row: the step its average is up to date with
        self.log_decays = numpy.zeros(1)  # [t]: the log of the product of the decays of steps 1 … t

    def __getitem__(self, key: KeyT) -> FloatsXd:
        if key in self.tables:
            table, step = self.tables[key], self.steps[key]
            behind = get_array_ops(table).xp.flatnonzero(self.averaged_at[key] < step)
            average = as_table(super().__getitem__(key))
            average[behind] = self.caught_up(key, average[behind], table[behind], behind, step)
            self.averaged_at[key][behind] = step
        return super().__getitem__(key)

    def average_step(self, key: KeyT, weights: FloatsXd, rows: Ints1d, previous: FloatsXd, step: int) -> None:
        """thinc's averaging step `step` for `rows` of `weights`, which were
        `previous` before the step."""
        ops = get_array_ops(weights)
        if key not in self.tables:
            super().__setitem__(key, ops.alloc(weights.shape, dtype="float32"))
            self.averaged_at[key] = ops.alloc1i(len(weights))
        table = self.tables[key] = as_table(weights)
        average = as_table(super().__getitem__(key))
        row_average = self.caught_up(key, average[rows], previous, rows, step - 1)
        ops.update_averages(row_average, table[rows], step)
        average[rows] = row_average
        self.averaged_at[key][rows] = step
        self.steps[key] = step

    def caught_up(self, key: KeyT, average: FloatsXd, weights: FloatsXd, rows: Ints1d, step: int) -> FloatsXd:
        """The averages of `rows`, which held `weights` since their averages
        were last brought up to date, brought up to date with `step`."""
        ops = get_array_ops(weights)
        since = ops.to_numpy(self.averaged_at[key][rows])
        keep = numpy.exp(self.log_decays_until(step)[step] - self.log_decays[since]).astype("float32")
        keep = ops.asarray(keep.reshape((-1,) + (1,) * (weights.ndim - 1)))
        return weights + keep * (average - weights)

    def log_decays_until(self, step: int) -> numpy.ndarray:
        """`self.log_decays`, extended to at least `step` (thinc's decay of step t
        is (1 + t) / (10 + t), at most MAX_AVERAGE_DECAY)."""
        if len(self.log_decays) <= step:
            t = numpy.arange(len(self.log_decays), 2 * step + 1)
            log_decays = numpy.log(numpy.minimum((1.0 + t) / (10.0 + t), MAX_AVERAGE_DECAY))
            self.log_decays = numpy.concatenate([self.log_decays, self.log_decays[-1] + numpy.cumsum(log_decays)])
        return self.log_decays


def as_table(array: FloatsXd) -> FloatsXd:
    """`array` as rows: a 1-D array as it is (each entry a row), another as
    (axis 0, the other axes flattened)."""
    return array if array.ndim == 1 else array.reshape(len(array), -1)


def touched_rows(ops, gradient: FloatsXd) -> Ints1d:
    """The indices of the rows of `gradient` (as_table's) with a nonzero entry."""
    nonzero = gradient != 0
    if nonzero.ndim == 1:
        return ops.xp.flatnonzero(nonzero)
    if nonzero.flags.c_contiguous and nonzero.shape[1] % 8 == 0:
        nonzero = nonzero.view("uint64")  # numpy reduces short rows slowly: 8 flags at a time
    touched = nonzero[:, 0].copy()
    for column in nonzero.T[1:]:
        touched |= column
    return ops.xp.flatnonzero(touched)
