"""A light stand-in for :mod:`dataclasses` on the start-up path of ``dockyard run``.

``dataclasses`` imports :mod:`inspect` (and with it ast, dis, tokenize...), several milliseconds
that every container start would pay.  The engine's option records only need what this gives:
an ``__init__`` from the annotated fields (defaults and ``field(default_factory=...)``),
``__repr__``, ``__eq__`` and :func:`asdict`.  Same spelling as dataclasses, so a record can move
back to them without other changes.
"""

from __future__ import annotations


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make) -> None:  # noqa: ANN001
        self.make = make


def field(*, default_factory):  # noqa: ANN001, ANN201
    return _Factory(default_factory)


def dataclass(cls):  # noqa: ANN001, ANN201
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN001, N807
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, {len(args)} given")
        for name, value in zip(names, args):
            setattr(self, name, value)
        for name in names[len(args):]:
            if name in kwargs:
                value = kwargs.pop(name)
            elif name in defaults:
                d = defaults[name]
                value = d.make() if isinstance(d, _Factory) else d
            else:
                raise TypeError(f"{cls.__name__}() missing argument: {name!r}")
            setattr(self, name, value)
        if kwargs:
            raise TypeError(f"{cls.__name__}() got unexpected arguments: {', '.join(sorted(kwargs))}")

    def __repr__(self) -> str:  # noqa: N807
        return f"{cls.__name__}(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in names) + ")"

    def __eq__(self, other: object) -> bool:  # noqa: N807
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in names)

    cls.__init__ = __init__
    cls.__repr__ = __repr__
    cls.__eq__ = __eq__
    cls.__hash__ = None
    cls.__record_fields__ = names
    for n, d in defaults.items():
        if isinstance(d, _Factory):
            delattr(cls, n)
    return cls


def asdict(obj) -> dict:  # noqa: ANN001
    """Fields as a dict, records inside converted too (lists and dicts are copied)."""
    def conv(v):  # noqa: ANN001, ANN202
        if hasattr(v, "__record_fields__"):
            return asdict(v)
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return {n: conv(getattr(obj, n)) for n in obj.__record_fields__}
