"""Field descriptions in ``help()`` for the dataclasses of the public API.

Each field of a result or configuration class is documented by a string
right after it (``r_wl: float = 1.0`` then ``\"\"\"Word-line segment
resistance, ohms.\"\"\"``), which reads well in the source and in Sphinx but
which Python drops: ``help(xs.TransferConfig)`` showed one sentence and no
field, unit or default. `document_fields` appends them to
the class docstring as a numpydoc ``Attributes`` section, built from the
source the first time the docstring is read (``help``, ``inspect.getdoc``,
``cls.__doc__``), so ``import xbarsim`` parses nothing. Without the source
(a zipped or stripped install) the docstring stays as written.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import inspect
import sys


class _FieldsDoc:
    """A class's ``__doc__``: the written docstring plus its fields',
    composed when first read (CPython's ``type.__doc__`` calls ``__get__``)."""

    def __init__(self, cls, written):
        self._cls = cls
        self._written = written
        self._text = None

    def __get__(self, obj, owner=None):
        if self._text is None:
            self._text = _compose(self._cls, self._written)
        return self._text


def document_fields(cls):
    """Class decorator (outermost, over ``@dataclass``): ``help(cls)`` lists
    every documented field of ``cls`` and of its xbarsim base classes, with
    its type and default."""
    cls.__doc__ = _FieldsDoc(cls, cls.__dict__.get("__doc__"))
    return cls


def _compose(cls, written):
    text = inspect.cleandoc(written) if isinstance(written, str) else ""
    if "\nAttributes\n---" in "\n" + text:
        return text
    try:
        fields = _fields(cls)
    except (OSError, TypeError, SyntaxError, ValueError):  # no source to read: the docstring as written
        return text
    if not fields:
        return text
    defaults = _defaults(cls)
    lines = ["", "", "Attributes", "----------"]
    for name, annotation, default, doc in fields:
        head = f"{name} : {annotation}" if annotation else name
        default = defaults.get(name, default)
        if default is not None:
            head += f", default {default}"
        lines.append(head)
        lines.extend("    " + line if line else "" for line in doc.splitlines())
    return text + "\n".join(lines)


def _defaults(cls):
    """A dataclass's defaults as values (``0.01``, not the constant's name
    the source gives; an enum by its value, ``'V/2'``), and ``WriteVerify()``
    for a default factory."""
    if not dataclasses.is_dataclass(cls):
        return {}
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = repr(f.default.value if isinstance(f.default, enum.Enum) else f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _factory_text(f.default_factory)
    return out


def _factory_text(factory):
    """A default factory as the call it makes: ``WriteVerify()``, and a
    ``functools.partial`` with its arguments, ``np.zeros(0)`` (a lambda
    showed as ``<lambda>()``)."""
    if isinstance(factory, functools.partial):
        func, args = factory.func, [repr(a) for a in factory.args]
        args += [f"{k}={v!r}" for k, v in factory.keywords.items()]
        parts = (getattr(func, "__module__", None) or "").split(".")
        # NumPy's public path, np.random.default_rng (a private module's name is left out)
        prefix = "" if parts[0] != "numpy" else ".".join(["np"] + [p for p in parts[1:] if not p.startswith("_")]) + "."
        return f"{prefix}{getattr(func, '__name__', 'a new value')}({', '.join(args)})"
    return f"{getattr(factory, '__name__', 'a new value')}()"


def _fields(cls):
    """``(name, annotation, default, doc)`` of each field documented by a
    string after it, base classes' first, a name given again counted once."""
    seen, out = set(), []
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("xbarsim"):
            continue
        node = _class_node(klass)
        if node is None:
            continue
        body = node.body
        for k, stmt in enumerate(body[:-1]):
            nxt = body[k + 1]
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                name = stmt.target.id
                entry = (name, ast.unparse(stmt.annotation),
                         None if stmt.value is None else ast.unparse(stmt.value), inspect.cleandoc(nxt.value.value))
                if name in seen:
                    out = [entry if e[0] == name else e for e in out]
                else:
                    seen.add(name)
                    out.append(entry)
    return out


def _class_node(klass):
    """The top-level ``class`` statement of ``klass`` in its module's source."""
    tree = _module_tree(klass.__module__)
    if tree is None:
        return None
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef) and stmt.name == klass.__name__:
            return stmt
    return None


@functools.lru_cache(maxsize=None)
def _module_tree(name):
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None
    with open(path, encoding="utf-8") as fh:
        return ast.parse(fh.read())
