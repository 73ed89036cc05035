"""Argument checks shared by the training API: seeds, counts, failure scales.

Each returns the value as a plain Python ``int`` (so that ``seed + k`` is
exact arithmetic, never a wrapping ``numpy.uint64``) or raises a
`ParameterError` that names the argument, before any compute.
"""

from __future__ import annotations

import numpy as np

from ..devices import real_scalar
from ..exceptions import ParameterError
from ..programming import _check_flag as check_flag  # one flag rule for the package: True or False

__all__ = ["SEED_OFFSET_MAX", "SEED_MAX", "check_seed", "check_count", "check_flag", "failure_scale"]

SEED_OFFSET_MAX = 104729
"""Largest offset the training API may add to a user's seed for a further random stream
(the range it accepts, ``[0, SEED_MAX]``, is kept one for all its functions).

In use: ``seed + 7919`` (`Surrogate.fit`'s failure devices), ``seed + k``
for layer ``k`` (`convert`, `to_crossbar`, `evaluate_circuit`) and ``seed +
1000 + k`` (`evaluate_circuit`'s read noise); `xbarsim.moons` adds nothing
more (`xbarsim.moons.SEED_OFFSET`, 0: it derives a seed per purpose). Each
must still be a 64-bit seed.
(`Surrogate.check` keys its streams ``(seed, "check", k)`` instead: apart
from the fit's for any seed.)"""

SEED_MAX = 2**64 - 1 - SEED_OFFSET_MAX
"""Largest seed the training API accepts: ``seed + SEED_OFFSET_MAX`` is a 64-bit seed."""


def check_seed(seed, name="seed", offset=None):
    """`seed` as a Python int such that ``seed + offset`` is still a 64-bit seed.

    ``offset``: the largest offset the caller adds to it. None: the training
    API's largest, `SEED_OFFSET_MAX`, so that one range, ``[0, SEED_MAX]``,
    holds for all its functions (a caller with more, e.g. ``seed + k`` over
    very many layers, passes ``max(SEED_OFFSET_MAX, ...)``). A layer, which
    derives no stream from its seed, passes 0.
    """
    from ..devices import zero_d_item

    offset = SEED_OFFSET_MAX if offset is None else int(offset)
    given, seed = seed, zero_d_item(seed)  # a 0-d integer array or tensor, as xs.program's seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) <= 2**64 - 1 - offset:
        derived = (f". The training API derives further random streams from it (up to {name} + {offset}), and "
                   "every stream is keyed by a 64-bit seed" if offset else " (a 64-bit seed)")
        from .._coerce import seed_refused

        raise ParameterError(seed_refused(given, name, f"an integer in [0, 2**64 - {offset + 1}] = "
                                                       f"[0, {2**64 - 1 - offset}]{derived}."))
    return int(seed)


def seed32(seed):
    """A seed checked by `check_seed` as the 32-bit seed that torch's
    generators and sklearn take: itself below 2**32, else a 32-bit hash of it. Torch's CPU generator
    (a Mersenne twister) keeps only a seed's low 32 bits, so seed and
    seed + 2**32 gave the same network and the same dropout masks (found by
    review); `make_moons_split` hashes sklearn's seed the same way."""
    return int(seed) if seed < 2**32 else int(np.random.SeedSequence(int(seed)).generate_state(1)[0])


def check_count(value, name, low=1, what=""):
    """`value` as a Python int ``>= low`` (bools refused: True is not a count).

    ``what``: an explanation appended to the message.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ParameterError(f"{name} = {value!r}; an integer >= {low}{what}.")
    return int(value)


def failure_scale(failures):
    """`failures` (True, False, or a scale >= 0 of the fitted failure
    probabilities) as a float scale; NumPy bools count as bools, and a
    negative or non-finite scale is refused (-1 meant no failures, silently)."""
    if isinstance(failures, (bool, np.bool_)):
        return 1.0 if failures else 0.0
    k = real_scalar(failures)
    if k is None or not np.isfinite(k) or k < 0:
        raise ParameterError(f"failures = {failures!r}; give True, False, or a scale >= 0 of the fitted failure "
                             "probabilities.")
    return k

