"""Variable expansion in Dockerfile words, as Docker's shell lexer does it.

``$VAR``, ``${VAR}``, ``${VAR:-word}``, ``${VAR:+word}`` (and ``${VAR:?msg}``), single and
double quotes (removed), and the escape character (``\\`` or the ``# escape=`` one).  Unset
variables expand to the empty string.  Errors raise :class:`ExpansionError`; the parser and
the builder turn them into a :class:`~dockyard.build.errors.DockerfileError` with a position.
"""

from __future__ import annotations

from collections.abc import Mapping


class ExpansionError(ValueError):
    pass


_SPECIAL = set("@*#?-$!0")


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = text
        self.i = 0
        self.env = env
        self.esc = escape

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.i += 1
        return ch

    # One word (``split=False``) or a list of words split on unquoted blanks.
    def process(self, stop: str = "", split: bool = False) -> tuple[str, list[str]]:
        result: list[str] = []
        words: list[str] = []
        cur: list[str] = []
        in_word = False

        def add_raw(text: str) -> None:
            nonlocal in_word
            cur.append(text)
            in_word = True

        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                if in_word:
                    words.append("".join(cur))
                return "".join(result), words
            if ch == "'":
                text = self._single()
                result.append(text)
                add_raw(text)
            elif ch == '"':
                text = self._double()
                result.append(text)
                add_raw(text)
            elif ch == "$":
                text = self._dollar()
                result.append(text)
                # an expanded value splits on blanks like an unquoted word
                for j, part in enumerate(text.split(" ") if split else [text]):
                    if j > 0 and in_word:
                        words.append("".join(cur))
                        cur.clear()
                        in_word = False
                    if part:
                        add_raw(part)
            else:
                self.next()
                if ch == self.esc:
                    nxt = self.next()
                    if not nxt:
                        break
                    result.append(nxt)
                    add_raw(nxt)
                    continue
                result.append(ch)
                if split and ch in " \t\n\r":
                    if in_word:
                        words.append("".join(cur))
                        cur.clear()
                        in_word = False
                else:
                    add_raw(ch)
        if stop:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        if in_word:
            words.append("".join(cur))
        return "".join(result), words

    def _single(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.next()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double(self) -> str:
        self.next()
        out: list[str] = []
        while True:
            ch = self.peek()
            if not ch:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.next()
            if ch == self.esc:
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.esc):
                    ch = self.next()
            out.append(ch)

    def _name(self) -> str:
        out: list[str] = []
        while self.peek():
            ch = self.peek()
            if not out and ch.isdigit():
                while self.peek().isdigit():
                    out.append(self.next())
                return "".join(out)
            if not out and ch in _SPECIAL:
                return self.next()
            if not (ch.isalnum() or ch == "_"):
                break
            out.append(self.next())
        return "".join(out)

    def _dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()
        ch = self.peek()
        if not ch:
            raise ExpansionError("syntax error: missing '}'")
        if ch in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self._name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == ":":
            modifier = self.next()
            try:
                word, _ = self.process(stop="}")
            except ExpansionError:
                if not self.peek():
                    raise ExpansionError("syntax error: missing '}'") from None
                raise
            value = self.env.get(name)
            if modifier == "+":
                return word if value else ""
            if modifier == "-":
                return value if value else word
            if modifier == "?":
                if not value:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
                return value
            raise ExpansionError(f"unsupported modifier ({modifier}) in substitution")
        if not ch:
            raise ExpansionError("syntax error: missing '}'")
        raise ExpansionError("missing ':' in substitution")


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word with variables expanded and quotes removed (Docker's ``ProcessWord``)."""
    if "$" not in word and "'" not in word and '"' not in word and escape not in word:
        return word  # nothing to expand, unquote or unescape: the lexer would copy it
    return _Lexer(word, env, escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split into words on unquoted blanks (Docker's ``ProcessWords``)."""
    return _Lexer(text, env, escape).process(split=True)[1]


def env_map(env_list: list[str]) -> dict[str, str]:
    """``["K=V", ...]`` to a dict; the first of repeated keys wins, as Docker's lookup."""
    out: dict[str, str] = {}
    for item in env_list:
        key, _, value = item.partition("=")
        out.setdefault(key, value)
    return out
