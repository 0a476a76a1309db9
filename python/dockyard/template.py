"""Docker's ``--format``: Go's ``text/template`` with Docker's functions, and its tables.

Outputs are meant to be byte-identical to ``docker`` for the same data, so this module
re-implements the parts of Go that show: the template lexer, parser and executor, ``fmt``'s
printing of values (``%v``, ``printf``), ``encoding/json`` for ``{{json}}``, and the
``tabwriter`` that aligns ``table`` output.

Data model.  Templates see Python values the way Go templates see ``interface{}`` values:

* ``dict`` (any mapping) is a Go **map**: ``.Key`` looks the key up, a missing key prints
  ``<no value>``, printing shows ``map[k:v]`` and ``json`` sorts the keys.
* :class:`Struct` (a ``dict`` subclass), dataclasses and other objects are Go **structs**:
  fields keep their order in ``json``, print as ``{v1 v2}``, and a missing field is an error
  (``can't evaluate field X``).  Callable attributes are methods and may take arguments.
* ``None`` is ``nil``; ``str``, ``int``, ``float``, ``bool``, ``list``/``tuple`` are Go's
  ``string``, ``int``, ``float64``, ``bool`` and ``[]interface{}``.

Public API: :func:`compile` / :class:`Template` (raw templates, as ``docker inspect`` uses
them), :func:`render_lines` and :func:`format_table` (the formatter of ``docker ps``,
``images`` ...: ``table`` prefix, ``\\t``/``\\n`` escapes, ``json`` shorthand), :func:`is_table`,
:func:`preprocess` and :func:`tabwriter`.  Every failure raises
:class:`~dockyard.errors.TemplateError` with Docker's one-line message, e.g.
``template parsing error: template: :1: function "foo" not defined``.
"""

from __future__ import annotations

import math
import re

from .errors import TemplateError

__all__ = [
    "Struct",
    "Template",
    "compile",
    "default_header",
    "format_table",
    "is_table",
    "preprocess",
    "render_lines",
    "tabwriter",
]

TABLE_PREFIX = "table"
JSON_FORMAT = "{{json .}}"


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


# =============================================================================================
# fmt: printing values (%v and Printf verbs)

class _Flags:
    __slots__ = ("minus", "plus", "plus_v", "sharp", "space", "zero", "width", "prec")

    def __init__(self) -> None:
        self.minus = self.plus = self.plus_v = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None


_PLAIN = _Flags()


def _pad(s: str, f: _Flags, zero_ok: bool = True) -> str:
    if f.width is None:
        return s
    n = f.width - len(s)
    if n <= 0:
        return s
    if f.minus:
        return s + " " * n
    return ("0" if f.zero and zero_ok else " ") * n + s


def _bad_verb(verb: str, v) -> str:
    if v is None or v is _NOVALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(v)}={_fmt_value(v, 'v', _PLAIN)})"


def _fmt_integer(n: int, verb: str, f: _Flags) -> str:
    if verb == "c":
        return _pad(chr(n) if 0 <= n <= 0x10FFFF and not 0xD800 <= n <= 0xDFFF else "\ufffd", f)
    if verb == "q":
        return _pad(_go_quote_rune(n, f.plus), f)
    if verb == "U":
        s = "U+%04X" % n if n >= 0 else "U+%X" % n
        if f.sharp and 0 <= n <= 0x10FFFF and chr(n).isprintable():
            s += " '" + chr(n) + "'"
        return _pad(s, f, zero_ok=False)
    base = {"v": "d", "d": "d", "b": "b", "o": "o", "O": "o", "x": "x", "X": "X"}.get(verb)
    if base is None:
        return _bad_verb(verb, n)
    neg = n < 0
    digits = format(abs(n), base)
    if f.prec is not None:
        if f.prec == 0 and n == 0:
            return _pad("", f, zero_ok=False)
        digits = digits.zfill(f.prec)
    elif f.zero and f.width is not None and not f.minus:
        width = f.width - (1 if neg or f.plus or f.space else 0)
        digits = digits.zfill(width)
    prefix = ""
    if f.sharp:
        if base == "b":
            prefix = "0b"
        elif base == "o" and not digits.startswith("0"):
            prefix = "0"
        elif base == "x":
            prefix = "0x"
        elif base == "X":
            prefix = "0X"
    if verb == "O":
        prefix = "0o"
    sign = "-" if neg else "+" if f.plus else " " if f.space else ""
    return _pad(sign + prefix + digits, f, zero_ok=False)


def _fmt_float(x: float, verb: str, f: _Flags) -> str:
    if verb == "v":
        fmt, prec = "g", -1
    elif verb in "gGxX":
        fmt, prec = verb, -1
    elif verb in "eEfF":
        fmt, prec = verb, 6
    else:
        return _bad_verb(verb, x)
    if f.prec is not None:
        prec = f.prec
    num = _format_float(x, fmt, prec)
    if num[0] not in "+-":
        num = "+" + num
    if f.space and num[0] == "+" and not f.plus:
        num = " " + num[1:]
    if num[1] in "IN":  # Inf, NaN: never zero padded; NaN has no sign unless asked
        if num[1] == "N" and not f.space and not f.plus:
            num = num[1:]
        return _pad(num, f, zero_ok=False)
    if f.plus or num[0] != "+":
        if f.zero and not f.minus and f.width is not None and f.width > len(num):
            return num[0] + "0" * (f.width - len(num)) + num[1:]
        return _pad(num, f)
    return _pad(num[1:], f)


def _fmt_string(s: str, verb: str, f: _Flags) -> str:
    if verb in "vs":
        if f.prec is not None:
            s = s[: f.prec]
        return _pad(s, f)
    if verb == "q":
        if f.prec is not None:
            s = s[: f.prec]
        if f.sharp and _can_backquote(s):
            return _pad("`" + s + "`", f)
        return _pad(_go_quote(s, ascii_only=f.plus), f)
    if verb in "xX":
        return _fmt_hex_bytes(s.encode("utf-8", "surrogatepass"), verb, f)
    return _bad_verb(verb, s)


def _fmt_hex_bytes(b: bytes, verb: str, f: _Flags) -> str:
    if f.prec is not None:
        b = b[: f.prec]
    digits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
    prefix = "0x" if verb == "x" else "0X"
    parts = []
    for i, byte in enumerate(b):
        if f.space and i > 0:
            parts.append(" ")
        if f.sharp and (f.space or i == 0):
            parts.append(prefix)
        parts.append(digits[byte >> 4] + digits[byte & 0xF])
    return _pad("".join(parts), f)


def _has_own_str(v) -> bool:
    return type(v).__str__ is not object.__str__


def _fmt_value(v, verb: str, f: _Flags, depth: int = 0) -> str:
    """Go's ``fmt`` printing of one operand with ``verb``."""
    if v is None or v is _NOVALUE:
        if depth > 0 or verb == "v":
            return _pad("<nil>", f, zero_ok=False) if depth == 0 else "<nil>"
        return _bad_verb(verb, None)
    if isinstance(v, bool):
        if verb in "tv":
            return _pad("true" if v else "false", f)
        return _bad_verb(verb, v)
    if isinstance(v, int):
        return _fmt_integer(v, verb, f)
    if isinstance(v, float):
        return _fmt_float(v, verb, f)
    if isinstance(v, str):
        return _fmt_string(v, verb, f)
    if isinstance(v, (bytes, bytearray)):
        if verb in "sq":
            return _fmt_string(v.decode("utf-8", "replace"), verb, f)
        if verb in "xX":
            return _fmt_hex_bytes(bytes(v), verb, f)
        return "[" + " ".join(_fmt_value(x, verb, f, depth + 1) for x in v) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_fmt_value(x, verb, f, depth + 1) for x in v) + "]"
    if _is_map(v):
        items = (
            _fmt_value(k, verb, f, depth + 1) + ":" + _fmt_value(v[k], verb, f, depth + 1)
            for k in _sorted_keys(v)
        )
        return "map[" + " ".join(items) + "]"
    if isinstance(v, Struct) or (_is_dataclass(v) and not _has_own_str(v)):
        parts = []
        for name, val in _struct_fields(v):
            s = _fmt_value(val, verb, f, depth + 1)
            parts.append(f"{name}:{s}" if f.plus_v else s)
        return "{" + " ".join(parts) + "}"
    if verb in "vsqxX":
        return _fmt_string(str(v), "s" if verb == "v" else verb, f)
    return _bad_verb(verb, v)


def _fmt_v(v) -> str:
    return _fmt_value(v, "v", _PLAIN)


def _sprint(*args) -> str:
    """``fmt.Sprint``: spaces between operands when neither side is a string."""
    out = []
    prev_string = False
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(_fmt_v(a))
        prev_string = is_string
    return "".join(out)


def _sprintln(*args) -> str:
    return " ".join(_fmt_v(a) for a in args) + "\n"


_PRINTF_FLAGS = "-+# 0"


def _sprintf(format: str, *args) -> str:
    """``fmt.Sprintf``, including ``*`` widths and ``%[n]d`` argument indexes."""
    out: list[str] = []
    nargs = len(args)
    argi = 0
    reordered = False
    i, n = 0, len(format)

    def arg_number(argi: int, i: int) -> tuple[int, int, bool, bool]:
        """Go's argNumber: (argi, i, found, good) for a ``[n]`` at format[i:]."""
        nonlocal reordered
        if i >= n or format[i] != "[":
            return argi, i, False, True
        reordered = True
        close = format.find("]", i + 1)
        if close < 0:
            return argi, i + 1, False, False
        num = format[i + 1 : close]
        if num.isdigit() and num.isascii() and 1 <= int(num) <= nargs:
            return int(num) - 1, close + 1, True, True
        return argi, close + 1, num.isdigit() and num.isascii(), False

    while i < n:
        j = format.find("%", i)
        if j < 0:
            out.append(format[i:])
            break
        out.append(format[i:j])
        i = j + 1
        f = _Flags()
        good = True
        while i < n and format[i] in _PRINTF_FLAGS:
            c = format[i]
            if c == "-":
                f.minus, f.zero = True, False
            elif c == "+":
                f.plus = True
            elif c == "#":
                f.sharp = True
            elif c == " ":
                f.space = True
            else:
                f.zero = not f.minus
            i += 1
        argi, i, after_index, ok = arg_number(argi, i)
        good = good and ok
        if i < n and format[i] == "*":
            i += 1
            if argi < nargs and _is_int(args[argi]):
                f.width = args[argi]
                if f.width < 0:
                    f.width, f.minus, f.zero = -f.width, True, False
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
            after_index = False
        else:
            k = i
            while i < n and "0" <= format[i] <= "9":
                i += 1
            if i > k:
                f.width = int(format[k:i])
                if after_index:  # "%[3]2d" is not allowed
                    good = False
        if i < n and format[i] == ".":
            i += 1
            if after_index:
                good = False
            argi, i, after_index, ok = arg_number(argi, i)
            good = good and ok
            if i < n and format[i] == "*":
                i += 1
                if argi < nargs and _is_int(args[argi]):
                    f.prec = args[argi] if args[argi] >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
                after_index = False
            else:
                k = i
                while i < n and "0" <= format[i] <= "9":
                    i += 1
                f.prec = int(format[k:i]) if i > k else 0
        if not after_index:
            argi, i, after_index, ok = arg_number(argi, i)
            good = good and ok
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = format[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if not good:
            out.append(f"%!{verb}(BADINDEX)")
            continue
        if argi >= nargs:
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if verb == "T":
            out.append(_pad("<nil>" if arg is None else _go_type(arg), f))
            continue
        if verb == "v":  # %+v asks for field names, not signs (and %#v is not Go syntax here)
            f.plus_v, f.plus, f.sharp = f.plus, False, False
        out.append(_fmt_value(arg, verb, f))
    if not reordered and argi < nargs:
        extra = ", ".join(
            "<nil>" if a is None else f"{_go_type(a)}={_fmt_v(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# =============================================================================================
# encoding/json, as Docker's {{json}} uses it (SetEscapeHTML(false), compact)

_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                 "\b": "\\b", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_JSON_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\\u2028\u2029\ud800-\udfff]')


def _json_escape_char(m: re.Match) -> str:
    c = m.group(0)
    esc = _JSON_ESCAPES.get(c)
    if esc is not None:
        return esc
    o = ord(c)
    if 0xD800 <= o <= 0xDFFF:
        return "\ufffd"
    return "\\u%04x" % o


def _json_string(s: str) -> str:
    return '"' + _JSON_NEEDS_ESCAPE.sub(_json_escape_char, s) + '"'


class _JSONError(Exception):
    pass


def _json_float(x: float) -> str:
    if math.isnan(x) or math.isinf(x):
        raise _JSONError(f"json: unsupported value: {_format_float(x, 'g', -1)}")
    a = abs(x)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = _format_float(x, "e", -1)
        if len(s) >= 4 and s[-4] == "e" and s[-3] == "-" and s[-2] == "0":
            s = s[:-2] + s[-1]
        return s
    return _format_float(x, "f", -1)


def _json_time(dt) -> str:
    """``time.Time.MarshalJSON`` (RFC 3339 with nanoseconds, trailing zeros trimmed)."""
    s = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        s += ("." + "%06d" % dt.microsecond).rstrip("0")
    off = dt.utcoffset()
    if off is None or off.total_seconds() == 0:
        return s + "Z"
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    return s + "%s%02d:%02d" % (sign, abs(total) // 60, abs(total) % 60)


def _json_encode(v, out: list[str]) -> None:
    if v is None or v is _NOVALUE:
        out.append("null")
    elif isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, int):
        out.append(str(v))
    elif isinstance(v, float):
        out.append(_json_float(v))
    elif isinstance(v, str):
        out.append(_json_string(v))
    elif isinstance(v, (bytes, bytearray)):
        import binascii

        out.append('"' + binascii.b2a_base64(bytes(v), newline=False).decode("ascii") + '"')
    elif isinstance(v, (list, tuple)):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(",")
            _json_encode(x, out)
        out.append("]")
    elif _is_map(v):
        keyed = sorted(((str(k), k) for k in v.keys()), key=lambda kv: kv[0])
        out.append("{")
        for i, (ks, k) in enumerate(keyed):
            if i:
                out.append(",")
            out.append(_json_string(ks))
            out.append(":")
            _json_encode(v[k], out)
        out.append("}")
    elif isinstance(v, Struct) or _is_dataclass(v):
        out.append("{")
        for i, (name, val) in enumerate(_struct_fields(v)):
            if i:
                out.append(",")
            out.append(_json_string(name))
            out.append(":")
            _json_encode(val, out)
        out.append("}")
    elif hasattr(v, "utcoffset") and hasattr(v, "strftime"):
        out.append('"' + _json_time(v) + '"')
    elif _has_own_str(v):
        out.append(_json_string(str(v)))
    else:
        _json_encode(Struct(_struct_fields(v)), out)


def _json(v) -> str:
    """Docker's ``json`` function.  An unencodable value (NaN) gives ``""``, as in Docker."""
    out: list[str] = []
    try:
        _json_encode(v, out)
    except _JSONError:
        return ""
    return "".join(out)


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


# =============================================================================================
# lexer (text/template/parse/lex.go)

_SPACE_CHARS = " \t\r\n"

# token types
EOF, ERROR, TEXT, LDELIM, RDELIM, SPACE = "EOF", "ERROR", "TEXT", "LDELIM", "RDELIM", "SPACE"
IDENT, FIELD, VAR, DOT, STRING, RAWSTRING = "IDENT", "FIELD", "VAR", "DOT", "STRING", "RAWSTRING"
CHARCONST, NUMBER, COMPLEX = "CHARCONST", "NUMBER", "COMPLEX"
BOOL, NIL, PIPE = "BOOL", "NIL", "PIPE"
LPAREN, RPAREN, DECLARE, ASSIGN, CHAR = "LPAREN", "RPAREN", "DECLARE", "ASSIGN", "CHAR"
_KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "template",
             "with"}


class _Tok:
    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ: str, pos: int, val: str, line: int) -> None:
        self.typ, self.pos, self.val, self.line = typ, pos, val, line

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ in _KEYWORDS or self.typ in (DOT, NIL):
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _go_U(c: str) -> str:
    """Go's ``%#U``."""
    if c.isprintable():
        return "U+%04X '%s'" % (ord(c), c)
    return "U+%04X" % ord(c)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalpha() or c.isdecimal()


def _lex(text: str) -> list[_Tok]:
    """Split a template into tokens, as text/template's lexer does (lexing stops at the
    first error, which becomes an ERROR token)."""
    toks: list[_Tok] = []
    n = len(text)
    line_pos, line_no = 0, 1

    def line_at(p: int) -> int:
        nonlocal line_pos, line_no
        if p > line_pos:
            line_no += text.count("\n", line_pos, p)
            line_pos = p
        return line_no

    def emit(typ: str, start: int, end: int) -> None:
        toks.append(_Tok(typ, start, text[start:end], line_at(start)))

    def error(start: int, msg: str) -> list[_Tok]:
        toks.append(_Tok(ERROR, start, msg, line_at(start)))
        toks.append(_Tok(EOF, n, "", line_at(start)))
        return toks

    def at_right_delim(p: int) -> tuple[bool, bool]:
        if (p + 1 < n and text[p] in _SPACE_CHARS and text[p + 1] == "-"
                and text.startswith("}}", p + 2)):
            return True, True
        return text.startswith("}}", p), False

    def at_terminator(p: int) -> bool:
        if p >= n:
            return True
        c = text[p]
        return c in _SPACE_CHARS or c in ".,|:)(" or text.startswith("}}", p)

    def skip_left_space(p: int) -> int:
        while p < n and text[p] in _SPACE_CHARS:
            p += 1
        return p

    pos = 0
    while True:
        # ---- text
        i = text.find("{{", pos)
        if i < 0:
            if pos < n:
                emit(TEXT, pos, n)
            toks.append(_Tok(EOF, n, "", line_at(n)))
            return toks
        trim = i + 3 < n and text[i + 2] == "-" and text[i + 3] in _SPACE_CHARS
        end = i
        if trim:
            while end > pos and text[end - 1] in _SPACE_CHARS:
                end -= 1
        if end > pos:
            emit(TEXT, pos, end)
        # ---- left delimiter
        pos = i + 2
        after = 2 if trim else 0
        if text.startswith("/*", pos + after):
            # comment
            start = i
            pos += after + 2
            x = text.find("*/", pos)
            if x < 0:
                return error(start, "unclosed comment")
            pos = x + 2
            delim, trim_right = at_right_delim(pos)
            if not delim:
                return error(start, "comment ends before closing delimiter")
            if trim_right:
                pos += 2
            pos += 2
            if trim_right:
                pos = skip_left_space(pos)
            continue
        emit(LDELIM, i, i + 2)
        pos += after
        paren_depth = 0
        # ---- inside action
        while True:
            delim, trim_right = at_right_delim(pos)
            if delim:
                if paren_depth != 0:
                    return error(pos, "unclosed left paren")
                if trim_right:
                    pos += 2
                emit(RDELIM, pos, pos + 2)
                pos += 2
                if trim_right:
                    pos = skip_left_space(pos)
                break
            if pos >= n:
                return error(pos, "unclosed action")
            start = pos
            c = text[pos]
            if c in _SPACE_CHARS:
                while pos < n and text[pos] in _SPACE_CHARS:
                    pos += 1
                # a trim-marked right delimiter starts with a space: leave it for later
                if pos < n and text[pos] == "-" and text.startswith("}}", pos + 1):
                    pos -= 1
                    if pos == start:
                        continue
                emit(SPACE, start, pos)
            elif c == "=":
                pos += 1
                emit(ASSIGN, start, pos)
            elif c == ":":
                if not text.startswith(":=", pos):
                    return error(start, "expected :=")
                pos += 2
                emit(DECLARE, start, pos)
            elif c == "|":
                pos += 1
                emit(PIPE, start, pos)
            elif c == '"':
                pos += 1
                while True:
                    if pos >= n or text[pos] == "\n":
                        return error(start, "unterminated quoted string")
                    ch = text[pos]
                    pos += 1
                    if ch == "\\":
                        if pos >= n or text[pos] == "\n":
                            return error(start, "unterminated quoted string")
                        pos += 1
                    elif ch == '"':
                        break
                emit(STRING, start, pos)
            elif c == "`":
                x = text.find("`", pos + 1)
                if x < 0:
                    return error(start, "unterminated raw quoted string")
                pos = x + 1
                emit(RAWSTRING, start, pos)
            elif c == "$" or (c == "." and pos + 1 < n and not "0" <= text[pos + 1] <= "9"):
                pos += 1
                if at_terminator(pos):
                    emit(VAR if c == "$" else DOT, start, pos)
                    continue
                while pos < n and _is_alnum(text[pos]):
                    pos += 1
                if not at_terminator(pos):
                    return error(start, "bad character " + _go_U(text[pos]))
                emit(VAR if c == "$" else FIELD, start, pos)
            elif c == "'":
                pos += 1
                while True:
                    if pos >= n or text[pos] == "\n":
                        return error(start, "unterminated character constant")
                    ch = text[pos]
                    pos += 1
                    if ch == "\\":
                        if pos >= n or text[pos] == "\n":
                            return error(start, "unterminated character constant")
                        pos += 1
                    elif ch == "'":
                        break
                emit(CHARCONST, start, pos)
            elif c in "+-." or "0" <= c <= "9":
                ok, pos = _scan_number(text, pos)
                if ok and pos < n and text[pos] in "+-":
                    ok, pos = _scan_number(text, pos)
                    if not ok or text[pos - 1] != "i":
                        return error(start, "bad number syntax: " + _go_quote(text[start:pos]))
                    emit(COMPLEX, start, pos)
                    continue
                if not ok:
                    return error(start, "bad number syntax: " + _go_quote(text[start:pos]))
                emit(NUMBER, start, pos)
            elif _is_alnum(c):
                while pos < n and _is_alnum(text[pos]):
                    pos += 1
                word = text[start:pos]
                if not at_terminator(pos):
                    return error(start, "bad character " + _go_U(text[pos]))
                if word in _KEYWORDS:
                    emit(word, start, pos)
                elif word in ("true", "false"):
                    emit(BOOL, start, pos)
                elif word == "nil":
                    emit(NIL, start, pos)
                else:
                    emit(IDENT, start, pos)
            elif c == "(":
                paren_depth += 1
                pos += 1
                emit(LPAREN, start, pos)
            elif c == ")":
                paren_depth -= 1
                if paren_depth < 0:
                    return error(start, "unexpected right paren")
                pos += 1
                emit(RPAREN, start, pos)
            elif c <= "\x7f" and c.isprintable():
                pos += 1
                emit(CHAR, start, pos)
            else:
                return error(start, "unrecognized character in action: " + _go_U(c))


def _scan_number(text: str, pos: int) -> tuple[bool, int]:
    n = len(text)

    def accept(p: int, valid: str) -> int:
        return p + 1 if p < n and text[p] in valid else p

    def accept_run(p: int, valid: str) -> int:
        while p < n and text[p] in valid:
            p += 1
        return p

    pos = accept(pos, "+-")
    digits = "0123456789_"
    p = accept(pos, "0")
    if p > pos:
        pos = p
        for prefix, ds in (("xX", "0123456789abcdefABCDEF_"), ("oO", "01234567_"), ("bB", "01_")):
            p = accept(pos, prefix)
            if p > pos:
                pos, digits = p, ds
                break
    pos = accept_run(pos, digits)
    p = accept(pos, ".")
    if p > pos:
        pos = accept_run(p, digits)
    if len(digits) == 11:
        p = accept(pos, "eE")
        if p > pos:
            pos = accept_run(accept(p, "+-"), "0123456789_")
    if len(digits) == 23:
        p = accept(pos, "pP")
        if p > pos:
            pos = accept_run(accept(p, "+-"), "0123456789_")
    pos = accept(pos, "i")
    if pos < n and _is_alnum(text[pos]):
        return False, pos + 1
    return True, pos


# =============================================================================================
# parse tree (text/template/parse/node.go)

class _Node:
    __slots__ = ("pos",)


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int) -> None:
        self.pos, self.nodes = pos, []

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        return self.text


class _Action(_Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe) -> None:
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


class _Pipe(_Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line, self.is_assign, self.decl, self.cmds = pos, line, False, [], []

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        self.pos, self.args = pos, []

    def __str__(self) -> str:
        return " ".join(f"({a})" if isinstance(a, _Pipe) else str(a) for a in self.args)


class _Field(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


class _Variable(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class _Chain(_Node):
    __slots__ = ("node", "fields")

    def __init__(self, pos: int, node) -> None:
        self.pos, self.node, self.fields = pos, node, []

    def __str__(self) -> str:
        s = f"({self.node})" if isinstance(self.node, _Pipe) else str(self.node)
        return s + "".join("." + f for f in self.fields)


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Dot(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class _Bool(_Node):
    __slots__ = ("val",)

    def __init__(self, pos: int, val: bool) -> None:
        self.pos, self.val = pos, val

    def __str__(self) -> str:
        return "true" if self.val else "false"


class _Number(_Node):
    __slots__ = ("text", "is_int", "is_uint", "int_val", "is_float", "float_val")

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text
        self.is_int = self.is_uint = self.is_float = False
        self.int_val, self.float_val = 0, 0.0

    def __str__(self) -> str:
        return self.text


class _String(_Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self) -> str:
        return self.quoted


class _Branch(_Node):
    __slots__ = ("kind", "line", "pipe", "list", "else_list")

    def __init__(self, kind: str, pos: int, line: int, pipe, lst, else_list) -> None:
        self.kind, self.pos, self.line, self.pipe = kind, pos, line, pipe
        self.list, self.else_list = lst, else_list

    def __str__(self) -> str:
        s = "{{" + self.kind + " " + str(self.pipe) + "}}" + str(self.list)
        if self.else_list is not None:
            s += "{{else}}" + str(self.else_list)
        return s + "{{end}}"


class _TemplateCall(_Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe) -> None:
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        if self.pipe is None:
            return "{{template " + _go_quote(self.name) + "}}"
        return "{{template " + _go_quote(self.name) + " " + str(self.pipe) + "}}"


class _Keyword(_Node):
    """``{{end}}``, ``{{else}}``, ``{{break}}`` and ``{{continue}}``."""

    __slots__ = ("word",)

    def __init__(self, word: str, pos: int) -> None:
        self.word, self.pos = word, pos

    def __str__(self) -> str:
        return "{{" + self.word + "}}"


# =============================================================================================
# parser (text/template/parse/parse.go)

class _ParseError(Exception):
    pass


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\"}


def _unquote(quoted: str) -> str:
    """``strconv.Unquote`` for template string and character literals."""
    q = quoted[0]
    body = quoted[1:-1]
    if q == "`":
        return body.replace("\r", "")
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c == q or (q == "'" and c == "\n"):
            raise _ParseError("invalid syntax")
        if c != "\\":
            out += c.encode("utf-8", "surrogatepass")
            i += 1
            continue
        i += 1
        if i >= n:
            raise _ParseError("invalid syntax")
        c = body[i]
        i += 1
        if c in _SIMPLE_ESCAPES:
            out += _SIMPLE_ESCAPES[c].encode()
        elif c == q:
            out += c.encode()
        elif c in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[c]
            h = body[i : i + size]
            if len(h) != size or not all(ch in "0123456789abcdefABCDEF" for ch in h):
                raise _ParseError("invalid syntax")
            i += size
            v = int(h, 16)
            if c == "x":
                if q == "'":
                    out += chr(v).encode()
                else:
                    out.append(v)
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise _ParseError("invalid syntax")
                out += chr(v).encode()
        elif c in "01234567":
            o = body[i - 1 : i + 2]
            if len(o) != 3 or not all(ch in "01234567" for ch in o):
                raise _ParseError("invalid syntax")
            i += 2
            v = int(o, 8)
            if v > 255:
                raise _ParseError("invalid syntax")
            if q == "'":
                out += chr(v).encode()
            else:
                out.append(v)
        else:
            raise _ParseError("invalid syntax")
    return out.decode("utf-8", "replace")


_OCTAL_LEGACY = re.compile(r"[+-]?0[0-7_]+")


def _parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)``-like (with Go's legacy ``0777`` octal)."""
    t = text
    if "__" in t or t.endswith("_"):
        return None
    try:
        if _OCTAL_LEGACY.fullmatch(t):
            sign = -1 if t.startswith("-") else 1
            return sign * int(t.lstrip("+-")[1:].replace("_", "") or "0", 8)
        return int(t, 0)
    except ValueError:
        return None


def _parse_float_literal(text: str) -> float | None:
    try:
        if text.lstrip("+-")[:2] in ("0x", "0X"):
            return float.fromhex(text.replace("_", ""))
        if "_" in text:  # Go allows underscores in floats only after a base prefix
            return None
        return float(text)
    except ValueError:
        return None


class _Parser:
    def __init__(self, text: str, funcs) -> None:
        self.text = text
        self.toks = _lex(text)
        self.last = len(self.toks) - 1
        self.i = 0
        self.hi = 0
        self.funcs = funcs
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0
        self.defs: dict[str, _List] = {}

    # -- token stream
    def next(self) -> _Tok:
        k = min(self.i, self.last)
        self.i += 1
        if k > self.hi:
            self.hi = k
        return self.toks[k]

    def backup(self, k: int = 1) -> None:
        self.i -= k

    def peek(self) -> _Tok:
        t = self.next()
        self.i -= 1
        return t

    def next_non_space(self) -> _Tok:
        while True:
            t = self.next()
            if t.typ != SPACE:
                return t

    def peek_non_space(self) -> _Tok:
        t = self.next_non_space()
        self.i -= 1
        return t

    # -- errors
    def errorf(self, msg: str):
        line = self.toks[min(self.hi, self.last)].line
        raise _ParseError(f"template: :{line}: {msg}")

    def unexpected(self, tok: _Tok, context: str):
        if tok.typ == ERROR:
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at :{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{tok}{extra}")
        self.errorf(f"unexpected {tok} in {context}")

    def expect(self, typ: str, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    # -- grammar
    def parse(self) -> _List:
        root = _List(self.peek().pos)
        while self.peek().typ != EOF:
            if self.peek().typ == LDELIM:
                mark = self.i
                self.next()
                if self.next_non_space().typ == "define":
                    self.parse_definition()
                    continue
                self.i = mark
            n = self.text_or_action()
            if isinstance(n, _Keyword) and n.word in ("end", "else"):
                self.errorf(f"unexpected {n}")
            root.nodes.append(n)
        return root

    def add_definition(self, name: str, root: _List) -> None:
        old = self.defs.get(name)
        if old is None or _is_empty_tree(old):
            self.defs[name] = root
        elif not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        tok = self.next_non_space()
        if tok.typ not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        try:
            name = _unquote(tok.val)
        except _ParseError as e:
            self.errorf(str(e))
        self.expect(RDELIM, context)
        saved_vars, self.vars = self.vars, ["$"]
        root, end = self.item_list()
        self.vars = saved_vars
        if not (isinstance(end, _Keyword) and end.word == "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, root)

    def item_list(self):
        lst = _List(self.peek_non_space().pos)
        while self.peek_non_space().typ != EOF:
            n = self.text_or_action()
            if isinstance(n, _Keyword) and n.word in ("end", "else"):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")

    def text_or_action(self):
        tok = self.next_non_space()
        if tok.typ == TEXT:
            return _Text(tok.pos, tok.val)
        if tok.typ == LDELIM:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")

    def action(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == "block":
            return self.block_control()
        if typ in ("break", "continue"):
            t = self.next_non_space()
            if t.typ != RDELIM:
                self.unexpected(t, "{{" + typ + "}}")
            if self.range_depth == 0:
                self.errorf("{{" + typ + "}} outside {{range}}")
            return _Keyword(typ, tok.pos)
        if typ == "else":
            return self.else_control()
        if typ == "end":
            return _Keyword("end", self.expect(RDELIM, "end").pos)
        if typ in ("if", "range", "with"):
            return self.branch_control(typ)
        if typ == "template":
            return self.template_control()
        self.backup()
        tok = self.peek()
        return _Action(tok.pos, tok.line, self.pipeline("command", RDELIM))

    def branch_control(self, context: str):
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, RDELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if nxt.word == "else":
                if context in ("if", "with") and self.peek().typ == context:
                    self.next()
                    else_list = _List(nxt.pos)
                    else_list.nodes.append(self.branch_control(context))
                else:
                    else_list, nxt = self.item_list()
                    if nxt.word != "end":
                        self.errorf(f"expected end; found {nxt}")
            return _Branch(context, pipe.pos, pipe.line, pipe, lst, else_list)
        finally:
            del self.vars[mark:]

    def else_control(self):
        peek = self.peek_non_space()
        if peek.typ in ("if", "with"):
            return _Keyword("else", peek.pos)
        return _Keyword("else", self.expect(RDELIM, "else").pos)

    def template_name(self, tok: _Tok, context: str) -> str:
        if tok.typ not in (STRING, RAWSTRING):
            self.unexpected(tok, context)
        try:
            return _unquote(tok.val)
        except _ParseError as e:
            self.errorf(str(e))

    def template_control(self):
        context = "template clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = None
        if self.next_non_space().typ != RDELIM:
            self.backup()
            pipe = self.pipeline(context, RDELIM)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def block_control(self):
        context = "block clause"
        tok = self.next_non_space()
        name = self.template_name(tok, context)
        pipe = self.pipeline(context, RDELIM)
        saved_vars, self.vars = self.vars, ["$"]
        saved_depth, self.range_depth = self.range_depth, 0
        root, end = self.item_list()
        self.vars, self.range_depth = saved_vars, saved_depth
        if end.word != "end":
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, root)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def pipeline(self, context: str, end: str) -> _Pipe:
        tok = self.peek_non_space()
        pipe = _Pipe(tok.pos, tok.line)
        while True:  # declarations: "$x :=", "$x =", "$i, $v :="
            v = self.peek_non_space()
            if v.typ != VAR:
                break
            mark = self.i
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (ASSIGN, DECLARE):
                pipe.is_assign = nxt.typ == ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                break
            if nxt.typ == CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, [v.val]))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (VAR, RDELIM, RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            # not a declaration: put the variable back
            self.i = mark
            break
        while True:
            tok = self.next_non_space()
            if tok.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if tok.typ in (BOOL, CHARCONST, COMPLEX, DOT, FIELD, IDENT, NUMBER, NIL, RAWSTRING,
                           STRING, VAR, LPAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_Bool, _Dot, _Nil, _Number, _String)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == SPACE:
                continue
            if tok.typ in (RDELIM, RPAREN):
                self.backup()
            elif tok.typ == PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self):
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == FIELD:
            chain = _Chain(self.peek().pos, node)
            while self.peek().typ == FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(chain.pos, node.ident + chain.fields)
            if isinstance(node, _Variable):
                return _Variable(chain.pos, node.ident + chain.fields)
            if isinstance(node, (_Bool, _String, _Number, _Nil, _Dot)):
                self.errorf(f"unexpected . after term {_go_quote(str(node))}")
            return chain
        return node

    def term(self):
        tok = self.next_non_space()
        typ = tok.typ
        if typ == IDENT:
            if tok.val not in self.funcs:
                self.errorf(f"function {_go_quote(tok.val)} not defined")
            return _Identifier(tok.pos, tok.val)
        if typ == DOT:
            return _Dot(tok.pos)
        if typ == NIL:
            return _Nil(tok.pos)
        if typ == VAR:
            if tok.val not in self.vars:
                self.errorf(f"undefined variable {_go_quote(tok.val)}")
            return _Variable(tok.pos, [tok.val])
        if typ == FIELD:
            return _Field(tok.pos, [tok.val[1:]])
        if typ == BOOL:
            return _Bool(tok.pos, tok.val == "true")
        if typ in (CHARCONST, NUMBER):
            return self.number(tok)
        if typ == COMPLEX:
            self.errorf(f"complex constants are not supported: {tok.val}")
        if typ == LPAREN:
            return self.pipeline("parenthesized pipeline", RPAREN)
        if typ in (STRING, RAWSTRING):
            try:
                return _String(tok.pos, tok.val, _unquote(tok.val))
            except _ParseError as e:
                self.errorf(str(e))
        self.backup()
        return None

    def number(self, tok: _Tok) -> _Number:
        text = tok.val
        node = _Number(tok.pos, text)
        if tok.typ == CHARCONST:
            if len(text) < 3:
                self.errorf("invalid syntax")
            try:
                s = _unquote(text)
            except _ParseError as e:
                self.errorf(str(e))
            if len(s) != 1:
                self.errorf(f"malformed character constant: {text}")
            node.is_int = node.is_uint = node.is_float = True
            node.int_val = ord(s)
            node.float_val = float(node.int_val)
            return node
        if text.endswith("i"):
            self.errorf(f"complex constants are not supported: {text}")
        iv = _parse_int(text)
        if iv is not None and -(1 << 63) <= iv < (1 << 64):
            node.is_float, node.float_val = True, float(iv)
            node.is_uint = iv >= 0
            node.is_int = iv < (1 << 63)
            node.int_val = iv
            return node
        fv = _parse_float_literal(text)
        if fv is None or math.isinf(fv):
            self.errorf(f"illegal number syntax: {_go_quote(text)}")
        if not any(c in text for c in ".eEpP"):
            self.errorf(f"integer overflow: {_go_quote(text)}")
        node.is_float, node.float_val = True, fv
        if fv == int(fv) and -(1 << 63) <= fv < (1 << 63):
            node.is_int, node.int_val = True, int(fv)
        return node


def _is_empty_tree(n) -> bool:
    if isinstance(n, _List):
        return all(_is_empty_tree(x) for x in n.nodes)
    if isinstance(n, _Text):
        return n.text.strip() == ""
    return False


# =============================================================================================
# executor (text/template/exec.go)

class _ExecError(Exception):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_SCALARS = (str, int, float, complex, bytes, bytearray, list, tuple)
_MAX_DEPTH = 200  # nested {{template}} calls; Go allows 100000, Python's stack does not


class _State:
    __slots__ = ("text", "defs", "funcs", "missingkey", "out", "vars", "node", "name", "depth")

    def __init__(self, text, defs, funcs, missingkey) -> None:
        self.text, self.defs, self.funcs, self.missingkey = text, defs, funcs, missingkey
        self.out: list[str] = []
        self.vars: list[list] = []
        self.node = None
        self.name = ""
        self.depth = 0

    # -- errors
    def errorf(self, msg: str):
        node = self.node
        name = _go_quote(self.name)
        if node is None:
            text = f"template: {self.name}: {msg}"
        else:
            before = self.text[: node.pos]
            line = before.count("\n") + 1
            col = len(before[before.rfind("\n") + 1 :].encode("utf-8", "surrogatepass"))
            text = f"template: :{line}:{col}: executing {name} at <{node}>: {msg}"
        raise _ExecError(text, "".join(self.out))

    # -- variables
    def var_value(self, name: str):
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                return self.vars[k][1]
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k][1] = value
                return
        self.errorf(f"undefined variable: {name}")

    # -- walking the tree
    def walk(self, dot, node) -> None:
        self.node = node
        t = type(node)
        if t is _Text:
            self.out.append(node.text)
        elif t is _Action:
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif t is _List:
            for n in node.nodes:
                self.walk(dot, n)
        elif t is _Branch:
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif t is _TemplateCall:
            self.walk_template(dot, node)
        elif t is _Keyword:
            raise _Break() if node.word == "break" else _Continue()
        else:  # pragma: no cover - the parser builds no other nodes
            self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: _Branch) -> None:
        self.node = node
        mark0 = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark = len(self.vars)
            decl = node.pipe.decl
            if val is None or val is _NOVALUE:
                items = None
            elif isinstance(val, (list, tuple, bytes, bytearray)):
                items = list(enumerate(val))
            elif _is_map(val):
                items = [(k, val[k]) for k in _sorted_keys(val)]
            elif _is_int(val):
                if len(decl) > 1:
                    self.errorf(f"can't use {val} to iterate over more than one variable")
                items = [(i, i) for i in range(val)]
            elif hasattr(val, "__iter__") and not isinstance(val, (str, Struct)):
                items = list(enumerate(val))
            else:
                self.errorf(f"range can't iterate over {_fmt_v(val)}")
            if items:
                for index, elem in items:
                    if decl:
                        if node.pipe.is_assign:
                            if len(decl) > 1:
                                self.set_var(decl[0].ident[0], index)
                                self.set_var(decl[1].ident[0], elem)
                            else:
                                self.set_var(decl[0].ident[0], elem)
                        else:
                            self.vars[-1][1] = elem
                            if len(decl) > 1:
                                self.vars[-2][1] = index
                    try:
                        self.walk(elem, node.list)
                    except _Continue:
                        pass
                    except _Break:
                        break
                    finally:
                        del self.vars[mark:]
                return
            if node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot, node: _TemplateCall) -> None:
        self.node = node
        root = self.defs.get(node.name)
        if root is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_DEPTH})")
        dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else _NOVALUE
        saved = (self.vars, self.name)
        self.vars, self.name = [["$", dot]], node.name
        self.depth += 1
        try:
            self.walk(dot, root)
        finally:
            self.depth -= 1
            self.vars, self.name = saved

    def print_value(self, node, v) -> None:
        self.node = node
        if v is None or v is _NOVALUE:
            self.out.append("<no value>")
        elif type(v) is str:
            self.out.append(v)
        else:
            self.out.append(_fmt_v(v))

    # -- evaluation
    def eval_pipeline(self, dot, pipe: _Pipe):
        self.node = pipe
        value = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            if value is None:  # a nil interface{} becomes "no value" (Go's "lovely!" step)
                value = _NOVALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value])
        return value

    def not_a_function(self, args, final) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: _Command, final):
        first = cmd.args[0]
        t = type(first)
        if t is _Field:
            return self.eval_field_node(dot, first, cmd.args, final)
        if t is _Chain:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if t is _Identifier:
            return self.eval_function(dot, first, cmd, cmd.args[1:], final)
        if t is _Pipe:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if t is _Variable:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if t is _Bool:
            return first.val
        if t is _Dot:
            return dot
        if t is _Nil:
            self.errorf("nil is not a command")
        if t is _Number:
            return self.ideal_constant(first)
        if t is _String:
            return first.text
        self.errorf(f"can't evaluate command {_go_quote(str(first))}")

    def ideal_constant(self, n: _Number):
        self.node = n
        text = n.text
        is_hex_int = (len(text) > 2 and text[0] == "0" and text[1] in "xX"
                      and "p" not in text and "P" not in text)
        if n.is_float and not is_hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
            return n.float_val
        if n.is_int:
            return n.int_val
        if n.is_uint:
            self.errorf(f"{text} overflows int")
        return _NOVALUE

    def eval_field_node(self, dot, field: _Field, args, final):
        self.node = field
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain: _Chain, args, final):
        self.node = chain
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        if pipe is None:
            pipe = _NOVALUE
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, var: _Variable, args, final):
        self.node = var
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, ident, args, final):
        for name in ident[:-1]:
            receiver = self.eval_field(dot, name, node, None, _MISSING, receiver)
        return self.eval_field(dot, ident[-1], node, args, final, receiver)

    def eval_field(self, dot, name: str, node, args, final, receiver):
        if receiver is _NOVALUE:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_go_quote(name)}")
            return _NOVALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if _is_map(receiver):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            try:
                return receiver[name]
            except KeyError:
                if self.missingkey == "error":
                    self.errorf(f"map has no entry for key {_go_quote(name)}")
                if self.missingkey == "zero":
                    return None
                return _NOVALUE
        if isinstance(receiver, Struct):
            if name in receiver:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver[name]
        elif not isinstance(receiver, _SCALARS) and not name.startswith("_"):
            try:
                attr = getattr(receiver, name)
            except AttributeError:
                pass
            else:
                if callable(attr) and not isinstance(attr, type):
                    fn = _Fn(attr, (), "any", builtin=False)
                    return self.eval_call(dot, fn, name, node, args[1:] if args else [], final)
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        self.errorf(f"can't evaluate field {name} in type {_go_type(receiver)}")

    def eval_function(self, dot, ident: _Identifier, cmd, args, final):
        self.node = ident
        fn = self.funcs.get(ident.name)
        if fn is None:
            self.errorf(f"{_go_quote(ident.name)} is not a defined function")
        return self.eval_call(dot, fn, ident.name, cmd, args, final)

    def eval_call(self, dot, fn: _Fn, name: str, node, args, final):
        num_in = len(args) + (final is not _MISSING)
        params, variadic = fn.params, fn.variadic
        if variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: "
                            f"want at least {len(params)} got {len(args)}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")

        if fn.builtin and name in ("and", "or"):
            v = _NOVALUE
            for arg in args:
                v = self.eval_arg(dot, "value", arg)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = self.validate_type(final, "value")
            return v

        argv = []
        i = 0
        while i < len(params) and i < len(args):
            argv.append(self.eval_arg(dot, params[i], args[i]))
            i += 1
        if variadic is not None:
            for arg in args[i:]:
                argv.append(self.eval_arg(dot, variadic, arg))
        if final is not _MISSING:
            if variadic is not None:
                kind = params[num_in - 1] if num_in - 1 < len(params) else variadic
            else:
                kind = params[-1]
            argv.append(self.validate_type(final, kind))
        try:
            return fn.impl(*argv)
        except _FuncError as e:
            self.node = node
            self.errorf(f"error calling {name}: {e}")
        except Exception as e:
            if fn.builtin:
                raise
            self.node = node
            self.errorf(f"error calling {name}: {e}")

    def validate_type(self, value, kind: str):
        if value is _NOVALUE:
            if kind in ("any", "value", "[]string"):
                return None
            self.errorf(f"invalid value; expected {_KIND_TYPE[kind]}")
        if kind in ("any", "value"):
            return value
        if kind == "string":
            ok = isinstance(value, str)
        elif kind == "int":
            ok = _is_int(value)
        else:  # []string
            ok = isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
        if not ok:
            self.errorf(f"wrong type for value; expected {_KIND_TYPE[kind]}; got {_go_type(value)}")
        return value

    def eval_arg(self, dot, kind: str, n):
        self.node = n
        t = type(n)
        if t is _Dot:
            return self.validate_type(dot, kind)
        if t is _Nil:
            if kind in ("any", "value", "[]string"):
                return None
            self.errorf(f"cannot assign nil to {_KIND_TYPE[kind]}")
        if t is _Field:
            return self.validate_type(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if t is _Variable:
            return self.validate_type(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if t is _Pipe:
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if t is _Identifier:
            return self.validate_type(self.eval_function(dot, n, n, [], _MISSING), kind)
        if t is _Chain:
            return self.validate_type(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "string":
            if t is _String:
                return n.text
            self.errorf(f"expected string; found {n}")
        if kind == "int":
            if t is _Number and n.is_int:
                return n.int_val
            if t is _Number and n.is_uint:
                self.errorf(f"{n} overflows int")
            self.errorf(f"expected integer; found {n}")
        if kind in ("any", "value"):
            if t is _Bool:
                return n.val
            if t is _Number:
                return self.ideal_constant(n)
            if t is _String:
                return n.text
        self.errorf(f"can't handle {n} for arg of type {_KIND_TYPE[kind]}")


# =============================================================================================
# public API

class Template:
    """A parsed template.  Build it with :func:`compile`."""

    __slots__ = ("source", "_root", "_defs")

    def __init__(self, source: str, root: _List, defs: dict[str, _List]) -> None:
        self.source = source
        self._root = root
        self._defs = defs

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def _execute(self, obj, funcs, missingkey: str) -> str:
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise ValueError(f"unknown missingkey option {missingkey!r}")
        state = _State(self.source, self._defs, funcs, missingkey)
        dot = _NOVALUE if obj is None else obj
        state.vars.append(["$", dot])
        try:
            state.walk(dot, self._root)
        except (_Break, _Continue):  # pragma: no cover - rejected by the parser
            pass
        return "".join(state.out)

    def render(self, obj, *, missingkey: str = "default") -> str:
        """Execute the template with ``obj`` as dot.

        ``missingkey`` is Go's option: ``"default"`` prints ``<no value>`` for a missing map
        key, ``"error"`` makes it an error (``docker inspect``'s raw-JSON fallback uses it).
        """
        try:
            return self._execute(obj, _FUNCS, missingkey)
        except _ExecError as e:
            raise TemplateError(f"template parsing error: {e}") from None

    def _render_header(self, header) -> str:
        # Docker ignores errors here and keeps what was written before the failure.
        try:
            return self._execute(header, _HEADER_FUNCS, "default")
        except _ExecError as e:
            return e.output


_CACHE: dict[str, Template] = {}
_CACHE_MAX = 256


def compile(fmt: str) -> Template:  # noqa: A001 - the natural name; shadows only in here
    """Parse ``fmt`` as Docker does (``templates.Parse``); cached per string.

    Raises TemplateError ``template parsing error: template: :1: ...`` when it does not parse.
    """
    tmpl = _CACHE.get(fmt)
    if tmpl is not None:
        return tmpl
    parser = _Parser(fmt, _FUNCS)
    try:
        root = parser.parse()
    except _ParseError as e:
        raise TemplateError(f"template parsing error: {e}") from None
    tmpl = Template(fmt, root, parser.defs)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[fmt] = tmpl
    return tmpl


def is_table(fmt: str) -> bool:
    """Whether ``fmt`` asks for a table (Docker: it starts with ``table``)."""
    return fmt.startswith(TABLE_PREFIX)


def preprocess(fmt: str) -> str:
    """Docker's formatter preprocessing: drop the ``table`` prefix, expand ``json`` to
    ``{{json .}}``, trim spaces, and turn the two-character ``\\t`` and ``\\n`` into a tab and
    a newline.  (``docker inspect --format`` does none of this.)"""
    if is_table(fmt):
        fmt = fmt[len(TABLE_PREFIX) :]
    elif fmt == "json":
        fmt = JSON_FORMAT
    fmt = fmt.strip(" ")
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


_CAMEL_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")


def default_header(field: str) -> str:
    """The column title for a field when the caller gives none: ``CreatedAt`` -> ``CREATED AT``."""
    words = _CAMEL_WORD.findall(field)
    return " ".join(words).upper() if words else field.upper()


class _HeaderMap(dict):
    """The data a table's header row is rendered from: field name -> column title."""

    __slots__ = ()

    def __missing__(self, key):
        if not isinstance(key, str):
            raise KeyError(key)
        return default_header(key)


def format_table(fmt: str, rows, headers: dict[str, str] | None = None) -> str:
    """Render ``rows`` with a ``table ...`` format, as ``docker ps``/``images`` do.

    The header row is the same template rendered over ``{field: title}``: titles come from
    ``headers`` (e.g. ``{"ID": "IMAGE ID", "CreatedSince": "CREATED"}``) or
    :func:`default_header`.  Columns are aligned by :func:`tabwriter` with Docker's settings.
    The header is printed even when there are no rows.
    """
    tmpl = compile(preprocess(fmt))
    body = [tmpl.render(row) + "\n" for row in rows]
    header = tmpl._render_header(_HeaderMap(headers or {}))
    return tabwriter(header + "\n" + "".join(body))


def render_lines(fmt: str, objs, headers: dict[str, str] | None = None) -> str:
    """Render each object on its own line with a ``--format`` value (a ``table`` format is
    passed to :func:`format_table`)."""
    if is_table(fmt):
        return format_table(fmt, objs, headers)
    tmpl = compile(preprocess(fmt))
    return "".join(tmpl.render(obj) + "\n" for obj in objs)


# =============================================================================================
# tabwriter: Docker's fork of Go's text/tabwriter (cli/command/formatter/tabwriter)

_TAB_SPLIT = re.compile(r"([\t\v\n\f])")


def _display_width(s: str, east_asian: bool) -> int:
    """Cell width as Docker's tabwriter measures it (``runewidth.StringWidth``): wide East
    Asian characters count 2, combining marks and control characters 0."""
    if s.isascii():
        if s.isprintable():
            return len(s)
        return sum(1 for c in s if " " <= c < "\x7f")
    import unicodedata

    width = 0
    after_zwj = open_flag = False
    for c in s:
        o = ord(c)
        is_ri = 0x1F1E6 <= o <= 0x1F1FF
        if o < 0x20 or 0x7F <= o <= 0x9F or o == 0xAD:
            w = 0
        elif o < 0x300 and not east_asian:
            w = 1
        elif after_zwj or (is_ri and open_flag):
            w = 0  # joined to the previous character in one grapheme cluster
        elif unicodedata.category(c) in ("Mn", "Me", "Cf", "Cs"):
            w = 0
        else:
            eaw = unicodedata.east_asian_width(c)
            w = 2 if eaw in ("W", "F") or (east_asian and eaw == "A") else 1
        open_flag = is_ri and not open_flag
        after_zwj = c == "\u200d"
        width += w
    return width


def tabwriter(
    text: str,
    minwidth: int = 10,
    tabwidth: int = 1,
    padding: int = 3,
    padchar: str = " ",
    *,
    east_asian: bool = False,
) -> str:
    """Align tab-terminated cells like Go's ``tabwriter`` (Docker's fork, flags 0).

    Defaults are Docker's ``NewWriter(out, 10, 1, 3, ' ', 0)``.  Cells are terminated by
    ``\\t`` (or ``\\v``); the text after a line's last tab is not part of a column.  A column
    block is a run of consecutive lines that have a cell in that column; its width is the
    widest cell plus ``padding``, at least ``minwidth``.  A line without tabs ends all blocks.
    ``east_asian`` counts ambiguous-width characters as 2, as Docker does in CJK locales.
    """
    if minwidth < 0 or tabwidth < 0 or padding < 0:
        raise ValueError("negative minwidth, tabwidth, or padding")
    out: list[str] = []
    lines: list[list[tuple[str, int]]] = [[]]

    def flush() -> None:
        _tw_format(out, lines, [], 0, len(lines), minwidth, tabwidth, padding, padchar)

    parts = _TAB_SPLIT.split(text)
    for k in range(0, len(parts) - 1, 2):
        cell, sep = parts[k], parts[k + 1]
        line = lines[-1]
        line.append((cell, _display_width(cell, east_asian) if cell else 0))
        if sep == "\n" or sep == "\f":
            lines.append([])
            if sep == "\f" or len(line) == 1:
                flush()
                lines = [[]]
    if parts[-1]:
        lines[-1].append((parts[-1], 0))
    flush()
    return "".join(out)


def _tw_format(out, lines, widths, line0, line1, minwidth, tabwidth, padding, padchar) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # a cell in this column: print the lines before the block, then size the block
        _tw_write_lines(out, lines, widths, line0, this, tabwidth, padchar)
        line0 = this
        width = minwidth
        while this < line1:
            line = lines[this]
            if column >= len(line) - 1:
                break
            w = line[column][1] + padding
            if w > width:
                width = w
            this += 1
        widths.append(width)
        _tw_format(out, lines, widths, line0, this, minwidth, tabwidth, padding, padchar)
        widths.pop()
        line0 = this
    _tw_write_lines(out, lines, widths, line0, line1, tabwidth, padchar)


def _tw_write_lines(out, lines, widths, line0, line1, tabwidth, padchar) -> None:
    for i in range(line0, line1):
        line = lines[i]
        for j, (text, w) in enumerate(line):
            if text:
                out.append(text)
            if j < len(widths):
                cellw = widths[j]
                if padchar == "\t":
                    if tabwidth:
                        cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
                        out.append("\t" * ((cellw - w + tabwidth - 1) // tabwidth))
                else:
                    out.append(padchar * (cellw - w))
        if i + 1 != len(lines):
            out.append("\n")
