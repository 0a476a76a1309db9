"""Go's fmt as templates print: %v of values and Printf's verbs (print, printf, println)."""

from __future__ import annotations

from .values import (
    Struct,
    _NOVALUE,
    _can_backquote,
    _format_float,
    _go_quote,
    _go_quote_rune,
    _go_type,
    _is_dataclass,
    _is_int,
    _is_map,
    _sorted_keys,
    _struct_fields,
)


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
