"""The template lexer (Go's text/template/parse/lex.go)."""

from __future__ import annotations

from .values import _go_quote


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
