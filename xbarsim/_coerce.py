"""One conversion of user arrays to float64, shared by every entry point.

NumPy's own ``np.asarray(value, dtype=np.float64)`` is too forgiving for a
simulator's inputs: it drops an imaginary part with only a warning, reads
True as 1 (siemens, ohms, volts...), parses strings ("1e-4"), ignores the
mask of a masked array, turns None into NaN, and refuses a torch tensor
that requires grad with a bare RuntimeError. `as_real_array` refuses all of
those with a `ParameterError` that names the argument, and detaches torch
tensors (also on a GPU) first.
"""

from __future__ import annotations

import enum
import sys

import numpy as np

from .exceptions import ParameterError

__all__ = ["as_real_array", "as_choice", "Choice"]


def as_choice(enum_cls, value, name):
    """``value`` as a member of ``enum_cls``: a member, or a string naming a
    member's value in any case; otherwise a `ParameterError` that lists the
    choices and names the nearest one. ``name`` is the argument's, for the
    message."""
    if isinstance(value, enum_cls):
        return value
    values = [m.value for m in enum_cls]
    if isinstance(value, str):  # only strings name a member (an array compared with == has no truth value)
        for member in enum_cls:
            if value.lower() == member.value.lower():
                return member
    choices = ", ".join(repr(v) for v in values)
    shown = repr(value) if isinstance(value, str) else f"{value!r:.60}"
    raise ParameterError(f"unknown {name} {shown}; choose one of {choices}{nearest_hint(value, values)}.")


def nearest_hint(value, values):
    """`` (did you mean 'x'?)`` naming the one of the strings ``values``
    that ``value`` starts or nearly spells (in any case), or "" when none
    does or ``value`` is not a string."""
    if not isinstance(value, str):
        return ""
    import difflib

    lowered = [v.lower() for v in values]
    starts = [v for v, low in zip(values, lowered) if value and low.startswith(value.lower())]
    close = difflib.get_close_matches(value.lower(), lowered, n=1)
    best = starts[0] if len(starts) == 1 else values[lowered.index(close[0])] if close else None
    return f" (did you mean {best!r}?)" if best else ""


class Choice(enum.Enum):
    """Base of xbarsim's enums of named choices: looked up by value, a
    member is found in any case (``BiasScheme("v/2")``), and an unknown value
    is a `ParameterError` listing the choices (Enum's own is a bare
    ValueError with no list)."""

    @classmethod
    def _missing_(cls, value):
        return as_choice(cls, value, cls.__name__)


def seed_refused(given, name, allowed):
    """The message refusing `given` as the seed `name`: ``"name = value;
    allowed"``, the value as its repr where that is one short line (a
    SeedSequence's spread over several), and, for a NumPy random generator,
    how to pass one of its draws instead (it was refused with the range
    alone)."""
    text = repr(given)
    if "\n" in text:
        text = f"<{type(given).__module__}.{type(given).__qualname__}>"
    elif len(text) > 80:
        text = text[:76] + " ..."
    hint = ""
    if isinstance(given, (np.random.Generator, np.random.SeedSequence, np.random.BitGenerator,
                          np.random.RandomState)):
        hint = (" A NumPy generator or SeedSequence is not taken as a seed: pass an integer drawn from it, "
                "e.g. int(rng.integers(2**63)) for a Generator, int(seed_sequence.generate_state(1)[0]) for a "
                "SeedSequence, int(random_state.randint(2**31)) for a RandomState.")
    return f"{name} = {text}; {allowed}{hint}"


def shape_of(value):
    """``value.shape`` where it has one, else None, for the checks that look
    at an input's size before converting it. A nested torch tensor has none
    (its ``.shape`` raises "NestedTensorImpl doesn't support sizes"): None,
    and its conversion refuses it by name."""
    if getattr(value, "is_nested", False):
        return None
    return getattr(value, "shape", None)


def _strided(tensor, name, units):
    """A torch tensor whose values NumPy can take: a sparse one made dense, a
    meta one (shapes only) or a nested one refused. They gave torch's raw
    errors ("can't convert Sparse layout tensor to numpy", "Cannot copy out
    of meta tensor")."""
    if getattr(tensor, "is_nested", False):  # torch's own errors: "to_dense does not support layout Jagged"
        raise ParameterError(f"{name} is a nested (ragged) torch tensor; pad it into a regular one first "
                             f"(torch.nested.to_padded_tensor) ({units}).")
    if getattr(tensor, "is_meta", False):
        raise ParameterError(f"{name} is a torch tensor on the meta device, which holds a shape but no values; "
                             f"pass a tensor with values ({units}).")
    import torch

    if tensor.layout != torch.strided:
        return tensor.to_dense()
    return tensor


def _tensor_to_numpy(tensor, name, units):
    """A CPU torch tensor as a NumPy array; dtypes NumPy lacks (bfloat16,
    the float8 kinds) are widened to float64 first, complex32 refused."""
    try:
        return tensor.numpy()
    except TypeError as exc:  # "Got unsupported ScalarType BFloat16"
        if tensor.is_complex():
            raise ParameterError(f"{name} must be real numbers; got complex values. Pass {units}.") from exc
        if tensor.is_floating_point():
            import torch

            return tensor.to(torch.float64).numpy()
        raise ParameterError(f"{name} is a torch tensor of dtype {tensor.dtype}, which has no NumPy "
                             f"equivalent; convert it with .double() first ({units}).") from exc


def _is_tensor(value):
    return hasattr(value, "detach") and hasattr(value, "cpu")


def _host_array(tensor, name, units):
    """A torch tensor (grad or not, any device, sparse) as a NumPy array."""
    return _tensor_to_numpy(_strided(tensor.detach(), name, units).cpu(), name, units)


def tensor_entries(value, convert):
    """A list or tuple holding torch tensors with each tensor converted by
    ``convert(entry, index)``; anything else as it is. (NumPy's conversion
    of such a list raised torch's bare RuntimeError for tensors that
    require grad.)"""
    if isinstance(value, (list, tuple)) and any(_is_tensor(e) for e in value):
        return [convert(e, i) if _is_tensor(e) else e for i, e in enumerate(value)]
    return value


def _nested_list(value):
    """Whether ``value`` is a list or tuple of lists or tuples."""
    return isinstance(value, (list, tuple)) and any(isinstance(e, (list, tuple)) for e in value)


def _nested_tensors(name, exc):
    """The refusal of the error ``exc`` from NumPy's conversion of ``name``:
    torch tensors (that require grad, bfloat16...) nested deeper than one
    list."""
    return ParameterError(f"{name} is a nested list that NumPy cannot convert ({exc}); give one array, or one "
                          "torch tensor (torch.stack).")


def _unmasked(value, name):
    """A masked array's data where nothing is masked; one with masked
    entries refused (NumPy's conversion reads them as the values under the
    mask, without a word)."""
    if isinstance(value, np.ma.MaskedArray):
        if np.ma.getmaskarray(value).any():
            raise ParameterError(f"{name} is a masked array with masked entries; fill them first "
                                 f"({name}.filled(...)), the simulator has no notion of a missing value.")
        return value.data
    return value


def as_array(value, name, expected, units):
    """``value`` as a NumPy array of its own dtype (labels, hits, counts:
    what `as_real_array` would make float64 or refuse as boolean): a torch
    tensor detached and brought to the CPU (one that requires grad, or on a
    GPU, raised torch's own error), ragged rows a `ParameterError` saying
    ``expected`` (NumPy's raw "inhomogeneous shape" otherwise)."""
    if _is_tensor(value):
        value = _host_array(value, name, units)
    value = _unmasked(value, name)  # labels and hits under a mask were scored (0.5 where 1.0 was meant)
    value = tensor_entries(value, lambda e, i: as_array(e, f"{name}[{i}]", expected, units))
    try:
        return np.asarray(value)
    except (RuntimeError, TypeError) as exc:  # torch's (TypeError: bfloat16, sparse, on a GPU), or an object's
        if _nested_list(value):
            raise _nested_tensors(name, exc) from None
        raise ParameterError(f"{name} ({type(value).__name__}) does not convert to an array ({exc}); expected "
                             f"{expected}.") from None
    except ValueError:
        raise ParameterError(f"{name} has rows of different lengths; expected {expected}.") from None


def as_real_array(value, name, expected="numeric", units="conductances in siemens, resistances in ohms, "
                                                          "voltages in volts"):
    """``value`` as a float64 array (no copy when it already is one).

    Parameters
    ----------
    value : array_like, torch tensor or scalar
        The user's input.
    name : str
        Its name in messages (``"g"``, ``"weight"``, ``"left.v"``...).
    expected : str
        What it should be, for the message (``"(out, in)"``...).
    units : str
        The units hint of the message.

    Raises
    ------
    ParameterError
        None, complex, boolean, string or masked values, or anything that
        does not convert to float64.
    """
    if value is None:
        raise ParameterError(f"{name} is None; give a {expected} array or number ({units}).")
    if _is_tensor(value):
        value = _host_array(value, name, units)
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(value):
        # read as dense, as a sparse tensor is (NumPy's "setting an array
        # element with a sequence" before)
        value = value.toarray()
    value = _unmasked(value, name)
    value = tensor_entries(value, lambda e, i: as_real_array(e, f"{name}[{i}]", expected, units))  # rows of a batch
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if kind is None and not isinstance(value, (bool, complex, str, bytes, np.generic)):
        # a list or other sequence: look at what NumPy makes of it first
        try:
            kind = np.asarray(value).dtype.kind
        except ValueError:
            kind = None
        except (RuntimeError, TypeError) as exc:
            if _nested_list(value):  # tensors that require grad, bfloat16, sparse... deeper than one list
                raise _nested_tensors(name, exc) from None
            kind = None
    if kind in ("c", "b") or isinstance(value, (bool, complex, np.bool_, np.complexfloating)):
        # NumPy would drop an imaginary part with only a warning, and read True as 1
        what = "complex" if kind == "c" or isinstance(value, (complex, np.complexfloating)) else "boolean"
        raise _not_real(name, what, units)
    if kind in ("U", "S") or isinstance(value, (str, bytes)):
        raise _strings(name, units)
    if kind in ("M", "m", "V"):  # dates, durations and records became floats without a word
        what = {"M": "dates (datetime64)", "m": "durations (timedelta64)", "V": "records (a structured array)"}[kind]
        raise ParameterError(f"{name} holds {what}, not numbers; give a plain array of real numbers ({units}).")
    if kind == "O" or (kind in ("f", "i", "u") and isinstance(value, (list, tuple))):
        _refuse_odd_entries(value, name, units)
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: a Python int past 1e308
        raise ParameterError(f"{name} must be a {expected} array of real numbers; got {type(value).__name__} "
                             f"that does not convert to float64 ({exc}).") from exc


def _not_real(name, what, units, at=""):
    return ParameterError(f"{name} must be real numbers; got {what} values{at}. Pass {units}.")


def _strings(name, units, at=""):
    return ParameterError(f"{name} holds strings{at}; convert them to numbers first ({units}).")


_NONE, _BOOL, _TEXT, _MASKED = 1, 2, 3, 4


def _odd(entry):
    """What `as_real_array` refuses in an entry of a list or object array
    (0: nothing)."""
    if entry is None:
        return _NONE
    if isinstance(entry, (bool, np.bool_)):
        return _BOOL
    if isinstance(entry, (str, bytes, np.str_, np.bytes_)):
        return _TEXT
    if entry is np.ma.masked:
        return _MASKED
    return 0


def _refuse_odd_entries(value, name, units):
    """Refuse, by the position of the first, entries NumPy's float64
    conversion of a list or object array would bend: None (it became NaN,
    refused as "NaN or inf"), booleans among numbers (``[True, 2e-4]`` was
    read as 1 S or 1 V, where a boolean array is refused), strings in an
    object array (parsed, where a string array is refused) and the masked
    constant (NaN with NumPy's warning)."""
    try:
        odd = np.vectorize(_odd, otypes=[np.int8])(np.asarray(value, dtype=object))
    except (TypeError, ValueError):  # ragged: float64 conversion below says so
        return
    if not odd.any():
        return
    first = tuple(np.argwhere(odd)[0]) if odd.ndim else ()
    at = f" (first at {list(map(int, first))})" if first else ""
    what = int(odd[first])
    if what == _NONE:
        raise ParameterError(f"{name} holds None{at}; the simulator has no notion of a missing value: give a "
                             f"number everywhere ({units}).")
    if what == _BOOL:
        raise _not_real(name, "boolean", units, at)
    if what == _TEXT:
        raise _strings(name, units, at)
    raise ParameterError(f"{name} holds masked entries{at}; fill them first, the simulator has no notion of a "
                         "missing value.")


def is_number(text):
    """Whether the text field `text` reads as a float (a CSV header or a row
    of numbers)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def where_not_finite(arr):
    """'is nan' for a scalar, else 'holds NaN or inf at [0, 2], [1, 0] and 4
    more': the first three positions and how many others."""
    if arr.ndim == 0:
        return f"is {float(arr)!r}"
    bad = np.argwhere(~np.isfinite(arr))
    where = ", ".join(str(list(i)) for i in bad[:3].tolist())
    if len(bad) > 3:
        where += f" and {len(bad) - 3} more"
    return f"holds NaN or inf at {where}"
