"""The functions templates call: text/template's builtins and Docker's basicFunctions and header
functions.
"""

from __future__ import annotations

from .values import _NOVALUE, _go_type, _is_int, _is_map, _truth
from .fmt import _fmt_v, _sprint, _sprintf, _sprintln
from .gojson import _json


# =============================================================================================
# template functions

class _FuncError(Exception):
    """An error a template function returns; reported as ``error calling NAME: ...``."""


class _Fn:
    __slots__ = ("impl", "params", "variadic", "builtin")

    def __init__(self, impl, params=(), variadic=None, builtin=True) -> None:
        self.impl = impl
        self.params = params  # kinds: "any", "value", "string", "int", "[]string"
        self.variadic = variadic
        self.builtin = builtin


_KIND_TYPE = {"any": "interface {}", "value": "reflect.Value", "string": "string", "int": "int",
              "[]string": "[]string"}


def _basic_kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return "invalid"


def _is_nil(v) -> bool:
    return v is None or v is _NOVALUE


def _eq(arg1, *args) -> bool:
    if not args:
        raise _FuncError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in args:
        k2 = _basic_kind(arg)
        if k1 != k2:
            if not _is_nil(arg1) and not _is_nil(arg):
                raise _FuncError("incompatible types for comparison")
            truth = False
        elif k1 != "invalid":
            truth = arg1 == arg
        else:
            nil1, nil2 = _is_nil(arg1), _is_nil(arg)
            if nil1 or nil2:
                truth = nil1 == nil2
            elif isinstance(arg1, (list, dict)) or isinstance(arg, (list, dict)):
                raise _FuncError(f"non-comparable type {_fmt_v(arg)}: {_go_type(arg)}")
            else:
                truth = arg1 == arg
        if truth:
            return True
    return False


def _ne(a, b) -> bool:
    return not _eq(a, b)


def _lt(a, b) -> bool:
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 == "invalid" or k2 == "invalid":
        raise _FuncError("invalid type for comparison")
    if k1 != k2:
        raise _FuncError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise _FuncError("invalid type for comparison")
    return a < b


def _le(a, b) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a, b) -> bool:
    return not _le(a, b)


def _ge(a, b) -> bool:
    return not _lt(a, b)


def _not(v) -> bool:
    return not _truth(v)


def _len(v) -> int:
    if v is None or v is _NOVALUE:
        raise _FuncError("len of nil pointer")
    if isinstance(v, str):
        return len(v.encode("utf-8", "surrogatepass"))
    if isinstance(v, (bytes, bytearray, list, tuple)) or _is_map(v):
        return len(v)
    raise _FuncError(f"len of type {_go_type(v)}")


def _index_arg(index, cap: int) -> int:
    if index is None or index is _NOVALUE:
        raise _FuncError("cannot index slice/array with nil")
    if not _is_int(index):
        raise _FuncError(f"cannot index slice/array with type {_go_type(index)}")
    if index < 0 or index > cap:
        raise _FuncError(f"index out of range: {index}")
    return index


def _index(item, *indexes):
    if item is None or item is _NOVALUE:
        raise _FuncError("index of untyped nil")
    for index in indexes:
        if item is None or item is _NOVALUE:
            raise _FuncError("index of nil pointer")
        if isinstance(item, str):
            item = item.encode("utf-8", "surrogatepass")
        if isinstance(item, (bytes, bytearray, list, tuple)):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise _FuncError(f"index out of range: {x}")
            item = item[x]
        elif _is_map(item):
            try:
                item = item[index]
            except (KeyError, TypeError):
                item = None
        else:
            raise _FuncError(f"can't index item of type {_go_type(item)}")
    return item


def _slice(item, *indexes):
    if item is None or item is _NOVALUE:
        raise _FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise _FuncError(f"too many slice indexes: {len(indexes)}")
    is_str = isinstance(item, str)
    if is_str:
        if len(indexes) == 3:
            raise _FuncError("cannot 3-index slice a string")
        seq = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple, bytes, bytearray)):
        seq = item
    else:
        raise _FuncError(f"can't slice item of type {_go_type(item)}")
    idx = [0, len(seq), len(seq)]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, len(seq))
    if idx[0] > idx[1]:
        raise _FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _FuncError(f"invalid slice index: {idx[1]} > {idx[2]}")
    out = seq[idx[0] : idx[1]]
    return out.decode("utf-8", "replace") if is_str else out


def _eval_args(args) -> str:
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(*args)


def _html(*args) -> str:
    s = _eval_args(args)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;").replace("\x00", "\ufffd"))


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E",
               "&": "\\u0026", "=": "\\u003D"}


def _js(*args) -> str:
    out = []
    for c in _eval_args(args):
        esc = _JS_ESCAPES.get(c)
        if esc is not None:
            out.append(esc)
        elif ord(c) < 0x20 or (ord(c) >= 0x80 and not c.isprintable()):
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def _urlquery(*args) -> str:
    out = []
    for b in _eval_args(args).encode("utf-8", "surrogatepass"):
        c = chr(b)
        if c.isascii() and (c.isalnum() or c in "-_.~"):
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append("%%%02X" % b)
    return "".join(out)


def _call(fn, *args):
    if fn is None or fn is _NOVALUE:
        raise _FuncError("call of nil")
    if not callable(fn):
        raise _FuncError(f"non-function of type {_go_type(fn)}")
    try:
        return fn(*args)
    except Exception as e:  # a method of the caller's data failed
        raise _FuncError(str(e)) from e


def _split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


def _join(elems, sep: str) -> str:
    return sep.join(elems)


def _is_separator(c: str) -> bool:
    if c <= "\x7f":
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdecimal():
        return False
    return c.isspace()


def _title(s: str) -> str:
    """``strings.Title``: upper-case the first letter of each word, leave the rest."""
    out = []
    prev = " "
    for c in s:
        if _is_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _lower(s: str) -> str:
    if s.isascii():
        return s.lower()
    out = []
    for c in s:
        low = c.lower()
        out.append(low if len(low) == 1 else ("i" if c == "\u0130" else c))
    return "".join(out)


def _upper(s: str) -> str:
    if s.isascii():
        return s.upper()
    out = []
    for c in s:
        up = c.upper()
        out.append(up if len(up) == 1 else c)
    return "".join(out)


def _pad_with_space(source: str, prefix: int, suffix: int) -> str:
    if source == "":
        return source
    if prefix < 0 or suffix < 0:
        raise _FuncError("strings: negative Repeat count")
    return " " * prefix + source + " " * suffix


def _truncate(source: str, length: int) -> str:
    # Docker truncates bytes, not characters.  A cut through a multi-byte character cannot
    # be represented in a str; it shows as U+FFFD, as a terminal would show the broken bytes.
    b = source.encode("utf-8", "surrogatepass")
    if len(b) < length:
        return source
    if length < 0:
        raise _FuncError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode("utf-8", "replace")


_BUILTIN_FUNCS = {
    "and": _Fn(None, ("value",), "value"),
    "or": _Fn(None, ("value",), "value"),
    "call": _Fn(_call, ("value",), "value"),
    "html": _Fn(_html, (), "any"),
    "index": _Fn(_index, ("value",), "value"),
    "slice": _Fn(_slice, ("value",), "value"),
    "js": _Fn(_js, (), "any"),
    "len": _Fn(_len, ("value",)),
    "not": _Fn(_not, ("value",)),
    "print": _Fn(_sprint, (), "any"),
    "printf": _Fn(_sprintf, ("string",), "any"),
    "println": _Fn(_sprintln, (), "any"),
    "urlquery": _Fn(_urlquery, (), "any"),
    "eq": _Fn(_eq, ("value",), "value"),
    "ge": _Fn(_ge, ("value", "value")),
    "gt": _Fn(_gt, ("value", "value")),
    "le": _Fn(_le, ("value", "value")),
    "lt": _Fn(_lt, ("value", "value")),
    "ne": _Fn(_ne, ("value", "value")),
}

# Docker's templates.basicFunctions
_FUNCS = dict(_BUILTIN_FUNCS)
_FUNCS.update({
    "json": _Fn(_json, ("any",), builtin=False),
    "split": _Fn(_split, ("string", "string"), builtin=False),
    "join": _Fn(_join, ("[]string", "string"), builtin=False),
    "title": _Fn(_title, ("string",), builtin=False),
    "lower": _Fn(_lower, ("string",), builtin=False),
    "upper": _Fn(_upper, ("string",), builtin=False),
    "pad": _Fn(_pad_with_space, ("string", "int", "int"), builtin=False),
    "truncate": _Fn(_truncate, ("string", "int"), builtin=False),
})


def _first(v, *_):
    return v


# Docker's templates.HeaderFunctions: the header row keeps column names intact.
_HEADER_FUNCS = dict(_FUNCS)
_HEADER_FUNCS.update({
    "json": _Fn(_first, ("string",), builtin=False),
    "split": _Fn(_first, ("string", "string"), builtin=False),
    "join": _Fn(_first, ("string", "string"), builtin=False),
    "title": _Fn(_first, ("string",), builtin=False),
    "lower": _Fn(_first, ("string",), builtin=False),
    "upper": _Fn(_first, ("string",), builtin=False),
    "truncate": _Fn(_first, ("string", "int"), builtin=False),
})
