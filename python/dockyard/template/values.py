"""Go values as templates see them: the Struct type, Go's type names and truth, strconv's quoting
and float formatting.
"""

from __future__ import annotations

import math


class Struct(dict):
    """A ``dict`` that templates treat as a Go struct rather than a map.

    Use it where Docker's data is a struct (``docker inspect``'s ``.Config``, ``.State``...):
    ``{{json .Config}}`` then keeps the field order instead of sorting keys, ``{{.Config}}``
    prints ``{v1 v2 ...}``, and ``{{.Config.Nope}}`` is an error rather than ``<no value>``.
    """

    __slots__ = ()


# =============================================================================================
# Go value helpers

class _NoValue:
    """Go's invalid ``reflect.Value``: a missing map key, or nil data.  Prints ``<no value>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_NOVALUE = _NoValue()


class _Missing:
    """The absence of a piped-in final argument (Go's ``missingVal``)."""

    __slots__ = ()


_MISSING = _Missing()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_map(v) -> bool:
    if isinstance(v, dict):
        return not isinstance(v, Struct)
    return _is_mapping(v)


def _is_mapping(v) -> bool:
    from collections.abc import Mapping  # already imported by the interpreter at start-up

    return isinstance(v, Mapping) and not isinstance(v, Struct)


def _is_dataclass(v) -> bool:
    return hasattr(type(v), "__dataclass_fields__")


def _struct_fields(v) -> list[tuple[str, object]]:
    """The exported fields of a struct-like value, in declaration order."""
    if isinstance(v, Struct):
        return list(v.items())
    if _is_dataclass(v):
        return [(n, getattr(v, n)) for n in type(v).__dataclass_fields__ if not n.startswith("_")]
    try:
        attrs = vars(v)
    except TypeError:
        return []
    return [(k, val) for k, val in attrs.items() if not k.startswith("_")]


def _go_type(v) -> str:
    """The Go type name used in error messages."""
    if v is None or v is _NOVALUE:
        return "interface {}"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, (bytes, bytearray)):
        return "[]uint8"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, str) for x in v):
            return "[]string"
        return "[]interface {}"
    if _is_map(v):
        return "map[string]interface {}"
    return type(v).__name__


def _truth(v) -> bool:
    """text/template's ``isTrue``: the zero value of a type is false; structs are true."""
    if v is None or v is _NOVALUE:
        return False
    if isinstance(v, (bool, int, float, complex)):
        return v != 0
    if isinstance(v, (str, bytes, bytearray, list, tuple)):
        return len(v) > 0
    if _is_map(v):
        return len(v) > 0
    return True


def _sorted_keys(m) -> list:
    keys = list(m.keys())
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=lambda k: (type(k).__name__, str(k)))


# ---------------------------------------------------------------------------------------------
# Go string quoting (strconv.Quote)

_QUOTE_ESCAPES = {
    "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
}


def _quote_char(ch: str, quote: str, ascii_only: bool) -> str:
    o = ord(ch)
    if ch == quote or ch == "\\":
        return "\\" + ch
    if 0x20 <= o < 0x7F:
        return ch
    if o >= 0x80 and not ascii_only and not 0xD800 <= o <= 0xDFFF and ch.isprintable():
        return ch
    esc = _QUOTE_ESCAPES.get(ch)
    if esc is not None:
        return esc
    if o < 0x20 or o == 0x7F:
        return "\\x%02x" % o
    if 0xD800 <= o <= 0xDFFF:
        o = 0xFFFD
    if o < 0x10000:
        return "\\u%04x" % o
    return "\\U%08x" % o


def _go_quote(s: str, ascii_only: bool = False) -> str:
    """``strconv.Quote`` (``%q``)."""
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return '"' + s + '"'
    return '"' + "".join(_quote_char(c, '"', ascii_only) for c in s) + '"'


def _go_quote_rune(r: int, ascii_only: bool = False) -> str:
    if r < 0 or r > 0x10FFFF or 0xD800 <= r <= 0xDFFF:
        r = 0xFFFD
    return "'" + _quote_char(chr(r), "'", ascii_only) + "'"


def _can_backquote(s: str) -> bool:
    for c in s:
        o = ord(c)
        if c == "`" or c == "\ufeff" or 0xD800 <= o <= 0xDFFF:
            return False
        if (o < 0x20 and c != "\t") or o == 0x7F:
            return False
    return True


# ---------------------------------------------------------------------------------------------
# Go float formatting (strconv.FormatFloat)

def _float_digits(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of ``abs(x)`` and the decimal point position:
    ``abs(x) == 0.DIGITS * 10**dp``.  Python's repr and Go's shortest formatting agree."""
    r = repr(abs(x))
    mant, _, exp = r.partition("e")
    ip, _, fp = mant.partition(".")
    digits = ip + fp
    dp = len(ip) + (int(exp) if exp else 0)
    stripped = digits.lstrip("0")
    dp -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(digits: str, dp: int, prec: int, e: str = "e") -> str:
    exp = dp - 1 if digits != "0" else 0
    out = digits[0]
    if prec > 0:
        frac = digits[1 : prec + 1]
        out += "." + frac + "0" * (prec - len(frac))
    sign = "-" if exp < 0 else "+"
    return f"{out}{e}{sign}{abs(exp):02d}"


def _fmt_f(digits: str, dp: int, prec: int) -> str:
    nd = len(digits)
    if dp > 0:
        ip = digits[:dp] + "0" * max(dp - nd, 0)
    else:
        ip = "0"
    if prec <= 0:
        return ip
    frac = "".join(digits[dp + i] if 0 <= dp + i < nd else "0" for i in range(prec))
    return ip + "." + frac


def _sign(x: float) -> str:
    return "-" if x < 0 or (x == 0 and math.copysign(1.0, x) < 0) else ""


def _format_float(x: float, fmt: str, prec: int) -> str:
    """``strconv.FormatFloat(x, fmt, prec, 64)`` for fmt in ``eEfFgGxX``; NaN/Inf as Go."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if fmt in "xX":
        return _format_hex_float(x, fmt)
    if prec >= 0:
        if fmt in "gG" and prec == 0:
            prec = 1
        return ("%." + str(prec) + fmt) % x
    sign = _sign(x)
    digits, dp = _float_digits(x)
    if fmt in "eE":
        return sign + _fmt_e(digits, dp, len(digits) - 1, fmt)
    if fmt in "fF":
        return sign + _fmt_f(digits, dp, max(len(digits) - dp, 0))
    # shortest %g: exponent form when exp < -4 || exp >= 6 (Go uses 6 for the shortest case)
    exp = dp - 1 if digits != "0" else 0
    if exp < -4 or exp >= 6:
        return sign + _fmt_e(digits, dp, len(digits) - 1, "e" if fmt == "g" else "E")
    return sign + _fmt_f(digits, dp, max(len(digits) - dp, 0))


def _format_hex_float(x: float, fmt: str) -> str:
    h = float.hex(x)  # '-0x1.8000000000000p+0'
    sign = "-" if h.startswith("-") else ""
    mant, _, exp = h.lstrip("-")[2:].partition("p")
    ip, _, fp = mant.partition(".")
    fp = fp.rstrip("0")
    e = int(exp)
    out = f"{sign}0x{ip}{'.' + fp if fp else ''}p{'-' if e < 0 else '+'}{abs(e):02d}"
    return out.upper() if fmt == "X" else out


def _go_float_str(x: float) -> str:
    """``%v`` of a float64."""
    return _format_float(x, "g", -1)
