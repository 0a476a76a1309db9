"""encoding/json as Docker's {{json}} uses it: compact, HTML not escaped, map keys sorted."""

from __future__ import annotations

import math
import re

from .values import Struct, _NOVALUE, _format_float, _is_dataclass, _is_map, _struct_fields
from .fmt import _has_own_str


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
