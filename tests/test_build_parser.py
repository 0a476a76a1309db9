"""The Dockerfile language without building anything: parser, expansion, .dockerignore.

Unit tests pin Docker's rules one by one; property tests feed random input and expect either a
result or a clean :class:`DockerfileError` (never another exception, never a hang).
"""

from __future__ import annotations

import signal
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.build.context import Context, Ignore
from dockyard.build.errors import DockerfileError
from dockyard.build.parser import parse, parse_words, split_stages
from dockyard.build.shell import ExpansionError, expand, expand_words
from dockyard.errors import DockyardError, InvalidArgument


def one(text: str):
    (inst,) = parse(text).instructions
    return inst


# -- directives, comments, continuations ------------------------------------------------------------

def test_escape_directive_changes_continuation():
    df = parse("# escape=`\nFROM bb\nRUN echo a `\n  b\nCOPY a\\b c\n")
    assert df.escape == "`"
    assert [i.cmd for i in df.instructions] == ["FROM", "RUN", "COPY"]
    assert df.instructions[1].args == ["echo a   b"]
    assert df.instructions[2].args == ["a\\b", "c"]


def test_directives_only_at_the_top():
    df = parse("FROM bb\n# escape=`\nRUN echo a \\\n b\n")
    assert df.escape == "\\"
    assert df.instructions[1].args == ["echo a  b"]


def test_syntax_directive_accepted_and_unknown_ends_directives():
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM bb\n")
    assert df.syntax == "docker/dockerfile:1" and df.escape == "`"
    df = parse("# foo=bar\n# escape=`\nFROM bb\n")
    assert df.escape == "\\"


def test_bad_and_repeated_escape_directive():
    with pytest.raises(DockerfileError, match="invalid escape token"):
        parse("# escape=x\nFROM bb\n")
    with pytest.raises(DockerfileError, match="only one escape parser directive"):
        parse("# escape=`\n# escape=\\\nFROM bb\n")


def test_comments_inside_continuations_and_blank_continuation_lines():
    df = parse("FROM bb\nRUN echo a \\\n# a comment\n    # indented comment\n\n  && echo b\n")
    run = df.instructions[1]
    assert run.args == ["echo a   && echo b"]
    assert (run.line, run.end_line) == (2, 6)


def test_line_numbers_and_case_insensitive_keywords():
    df = parse("\n\nfrom bb\n\n  run echo hi\r\n")
    assert [(i.cmd, i.line) for i in df.instructions] == [("FROM", 3), ("RUN", 5)]


def test_bom_is_ignored():
    assert parse("\ufeffFROM bb\n").instructions[0].cmd == "FROM"


# -- forms ------------------------------------------------------------------------------------------

def test_json_and_shell_forms():
    assert one('CMD ["a", "b c"]').args == ["a", "b c"] and one('CMD ["a"]').json
    shell = one("CMD [not json")
    assert not shell.json and shell.args == ["[not json"]
    assert not one('RUN ["a", 1]').json  # not all strings: shell form, as Docker


def test_shell_requires_json():
    with pytest.raises(DockerfileError, match="SHELL requires the arguments to be in JSON form"):
        parse("FROM bb\nSHELL /bin/bash -c\n")


def test_env_forms():
    inst = one('ENV A=1 B="x y" C=z\\ w')
    assert inst.pairs == [("A", "1"), ("B", '"x y"'), ("C", "z\\ w")]
    legacy = one("ENV KEY  some value here")
    assert legacy.pairs == [("KEY", "some value here")]
    with pytest.raises(DockerfileError, match="can't find = in \"b\""):
        parse("FROM bb\nENV a=1 b\n")
    with pytest.raises(DockerfileError, match="ENV names can not be blank"):
        parse("FROM bb\nENV =x\n")
    with pytest.raises(DockerfileError, match="ENV must have two arguments"):
        parse("FROM bb\nENV onlykey\n")


def test_arg_forms():
    assert one("ARG A").pairs == [("A", None)]
    assert one("ARG A=1 B C=").pairs == [("A", "1"), ("B", None), ("C", "")]


def test_flags():
    inst = one("COPY --from=build --chown=1:2 a b /d/")
    assert inst.flags == {"from": "build", "chown": "1:2"} and inst.args == ["a", "b", "/d/"]
    with pytest.raises(DockerfileError, match="Unknown flag: nope"):
        parse("FROM bb\nCOPY --nope=1 a b\n")
    assert one("FROM --platform=linux/amd64 bb AS x").flags == {"platform": "linux/amd64"}


def test_from_arguments():
    assert one("FROM bb AS Build").args == ["bb", "AS", "Build"]
    with pytest.raises(DockerfileError, match="FROM requires either one or three arguments"):
        parse("FROM a b\n")
    with pytest.raises(DockerfileError, match="invalid name for build stage"):
        parse("FROM bb AS 1x\n")


def test_healthcheck_forms():
    inst = one("HEALTHCHECK --interval=5s --retries=3 CMD curl -f x")
    assert inst.args == ["CMD-SHELL", "curl -f x"] and inst.flags == {"interval": "5s", "retries": "3"}
    assert one('HEALTHCHECK CMD ["a", "b"]').args == ["CMD", "a", "b"]
    assert one("HEALTHCHECK NONE").args == ["NONE"]
    with pytest.raises(DockerfileError, match="Unknown type"):
        parse("FROM bb\nHEALTHCHECK WHAT\n")


def test_onbuild_rules():
    inst = one("ONBUILD RUN echo hi")
    assert inst.trigger is not None and inst.trigger.cmd == "RUN"
    for bad, msg in (("ONBUILD ONBUILD RUN x", "isn't allowed"), ("ONBUILD FROM bb", "isn't allowed"),
                     ("ONBUILD MAINTAINER x", "isn't allowed"), ("ONBUILD NOPE x", "unknown instruction")):
        with pytest.raises(DockerfileError, match=msg):
            parse("FROM bb\n" + bad + "\n")


def test_heredocs():
    df = parse("FROM bb\nRUN <<EOF\necho hi\necho $X\nEOF\nCOPY <<-\"END\" /f\n\tline $A\n\tEND\nRUN cat <<A <<B\na\nA\nb\nB\n")
    run, copy, two = df.instructions[1:]
    assert run.heredocs[0].name == "EOF" and run.heredocs[0].content == "echo hi\necho $X\n"
    assert copy.heredocs[0].content == "line $A\n" and not copy.heredocs[0].expand and copy.heredocs[0].chomp
    assert [h.content for h in two.heredocs] == ["a\n", "b\n"]
    with pytest.raises(DockerfileError, match="unterminated heredoc"):
        parse("FROM bb\nRUN <<EOF\necho\n")


def test_heredoc_marker_in_quotes_is_not_a_heredoc():
    df = parse("FROM bb\nRUN echo '<<EOF'\nRUN echo x\n")
    assert not df.instructions[1].heredocs and len(df.instructions) == 3


# -- errors carry positions --------------------------------------------------------------------------

def test_error_positions():
    with pytest.raises(DockerfileError) as info:
        parse("FROM bb\n\n  FOO bar\n", file="Dockerfile.dev")
    err = info.value
    assert (err.line, err.column) == (3, 3)
    assert str(err) == "Dockerfile.dev:3:3: unknown instruction: FOO"
    assert isinstance(err, InvalidArgument) and isinstance(err, DockyardError)


def test_stages():
    meta, stages = split_stages(parse("ARG A=1\nFROM bb AS one\nRUN x\nFROM one\nCOPY --from=one a b\n"))
    assert [m.cmd for m in meta] == ["ARG"]
    assert [(s.name, s.base, len(s.instructions)) for s in stages] == [("one", "bb", 1), ("", "one", 1)]
    with pytest.raises(DockerfileError, match="no build stage"):
        split_stages(parse("RUN x\nFROM bb\n"))
    with pytest.raises(DockerfileError, match="duplicate name"):
        split_stages(parse("FROM bb AS a\nFROM bb AS a\n"))


def test_parse_words_keeps_quotes_and_escapes():
    assert parse_words('a="b c" d=e\\ f \'g h\'') == ['a="b c"', "d=e\\ f", "'g h'"]


# -- expansion -----------------------------------------------------------------------------------------

ENV = {"A": "1", "EMPTY": "", "SP": "p q"}


@pytest.mark.parametrize("word,want", [
    ("$A", "1"), ("${A}", "1"), ("x${A}y", "x1y"), ("$NOPE", ""), ("${NOPE:-def}", "def"),
    ("${EMPTY:-def}", "def"), ("${A:-def}", "1"), ("${A:+set}", "set"), ("${NOPE:+set}", ""),
    ("${NOPE:-${A}}", "1"), ("'$A'", "$A"), ('"$A"', "1"), ("\\$A", "$A"), ('"\\$A"', "$A"),
    ('"a\\b"', "a\\b"), ("a\\ b", "a b"), ("$", "$"), ("$1x", "x"), ('"it\'s"', "it's"),
])
def test_expand(word, want):
    assert expand(word, ENV) == want


def test_expand_custom_escape():
    assert expand("`$A", ENV, "`") == "$A"
    assert expand("a\\b", ENV, "`") == "a\\b"


@pytest.mark.parametrize("word,msg", [
    ("${A", "missing '}'"), ("${}", "bad substitution"), ("${A:*x}", "unsupported modifier"),
    ("'abc", "single-quote"), ('"abc', "double-quote"), ("${A-x}", "missing ':'"),
])
def test_expand_errors(word, msg):
    with pytest.raises(ExpansionError, match=msg):
        expand(word, ENV)


def test_expand_words_splits_values():
    assert expand_words('80 "a b" $SP', ENV) == ["80", "a b", "p", "q"]


# -- .dockerignore ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns,path,excluded", [
    (["*.key"], "a.key", True), (["*.key"], "sub/a.key", False), (["**/*.key"], "sub/deep/a.key", True),
    (["**/*.key"], "a.key", True), (["logs"], "logs/x.log", True), (["logs", "!logs/keep"], "logs/keep", False),
    (["logs", "!logs/keep"], "logs/other", True), (["/abs"], "abs", True), (["a/../b"], "b", True),
    (["*", "!README.md"], "README.md", False), (["d?r"], "dir/x", True), (["# x", "x"], "x", True),
    (["[a-c].txt"], "b.txt", True), (["[a-c].txt"], "d.txt", False), (["docs/**"], "docs/a/b", True),
    (["**"], "anything/at/all", True), (["a.b"], "axb", False), (["!x", "x"], "x", True),
    (["  spaced  "], "spaced", True), (["a\\*b"], "a*b", True), (["a\\*b"], "axb", False),
])
def test_dockerignore(patterns, path, excluded):
    assert Ignore(patterns).excluded(path) is excluded


def test_bad_pattern_is_a_clean_error():
    with pytest.raises(DockyardError, match="syntax error in pattern"):
        Ignore(["[]"])


def test_context_walk_and_glob(tmp_path: Path):
    for rel in ("a.go", "b.go", "x.key", "logs/1.log", "logs/keep.log", "src/deep/c.go", "src/deep/c_test.go"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / ".dockerignore").write_text("*.key\nlogs\n!logs/keep.log\n**/*_test.go\n")
    ctx = Context(tmp_path)
    assert ctx.glob("*.go") == ["a.go", "b.go"]
    assert ctx.glob("src/*/c*.go") == ["src/deep/c.go"]
    assert ctx.walk(".") == [".dockerignore", "a.go", "b.go", "logs", "logs/keep.log", "src", "src/deep",
                             "src/deep/c.go"]
    before = ctx.checksum(["a.go"])
    (tmp_path / "a.go").write_text("changed")
    assert Context(tmp_path).checksum(["a.go"]) != before


# -- property tests: random input never crashes or hangs ----------------------------------------------

class _Alarm:
    def __enter__(self):
        def boom(*_):
            raise TimeoutError("hang")
        self.old = signal.signal(signal.SIGALRM, boom)
        signal.alarm(5)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.old)


KEYWORDS = ["FROM", "RUN", "CMD", "ENV", "ARG", "COPY", "ADD", "LABEL", "EXPOSE", "VOLUME", "USER", "WORKDIR",
            "SHELL", "ONBUILD", "HEALTHCHECK", "STOPSIGNAL", "ENTRYPOINT", "MAINTAINER", "# escape=`", "#", "<<EOF",
            "EOF", "\\", "`", "[", "]", '"', "'", "=", "--from=", "${", "}", ":-", ":+", "$"]
line_parts = st.lists(st.one_of(st.sampled_from(KEYWORDS), st.text(string.printable, max_size=8)), max_size=8)
dockerfiles = st.lists(line_parts.map(" ".join), max_size=12).map("\n".join)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(dockerfiles, st.text(max_size=300), st.binary(max_size=200)))
def test_parser_random_input_raises_only_dockerfile_error(text):
    with _Alarm():
        try:
            df = parse(text)
        except DockerfileError as exc:
            assert str(exc)
            return
        try:
            split_stages(df)
        except DockerfileError:
            pass


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(st.sampled_from(["$", "{", "}", ":", "-", "+", "A", "'", '"', "\\",
                                                                 " ", "?", "x"]), max_size=30).map("".join)))
def test_expansion_random_input_raises_only_expansion_error(word):
    with _Alarm():
        try:
            assert isinstance(expand(word, ENV), str)
            assert isinstance(expand_words(word, ENV), list)
        except ExpansionError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(string.printable, max_size=12), max_size=6), st.text(string.printable, max_size=20))
def test_dockerignore_random_patterns(patterns, path):
    with _Alarm():
        try:
            ignore = Ignore(patterns)
        except DockyardError as exc:  # a malformed pattern: a clean error, as Docker's
            assert "syntax error in pattern" in str(exc)
            return
        assert ignore.excluded(path) in (True, False)


# -- the click-free argument parser of `dockyard build` ----------------------------------------------------

def test_fast_build_argument_parser():
    from dockyard.build.command import parse_build_args

    p = parse_build_args(["-t", "a:1", "--tag=b", "-f", "D", "--build-arg", "K=V", "--build-arg=E", "--no-cache",
                          "--label", "x=y", "-q", "--iidfile", "i", "--progress=plain", "--target", "s", "ctx"])
    assert p is not None
    assert (p["tags"], p["file"], p["build_args"], p["no_cache"], p["labels"], p["quiet"], p["iidfile"],
            p["progress"], p["target"], p["context"]) == (["a:1", "b"], "D", ["K=V", "E"], True, ["x=y"], True, "i",
                                                          "plain", "s", "ctx")
    assert parse_build_args(["-"])["context"] == "-"
    for fallback in (["--help"], ["ctx", "more"], ["-tx", "ctx"], ["--bogus", "ctx"], [], ["-t"],
                     ["--progress", "fancy", "ctx"], ["--no-cache=1", "ctx"]):
        assert parse_build_args(fallback) is None, fallback
