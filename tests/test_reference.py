"""dockyard.reference against Docker's distribution/reference (ParseNormalizedNamed and friends)."""

import pickle

import pytest

from dockyard.errors import InvalidArgument, InvalidReference
from dockyard.reference import Reference, is_id_prefix, parse, parse_repository_tag

SHA = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "f" * 128
HEX64 = "a" * 64


# input -> (domain, path, tag, digest, str(), familiar())
VALID = [
    ("busybox", ("docker.io", "library/busybox", None, None,
                 "docker.io/library/busybox", "busybox")),
    ("busybox:latest", ("docker.io", "library/busybox", "latest", None,
                        "docker.io/library/busybox:latest", "busybox:latest")),
    ("busybox:1.36.1-musl", ("docker.io", "library/busybox", "1.36.1-musl", None,
                             "docker.io/library/busybox:1.36.1-musl", "busybox:1.36.1-musl")),
    ("library/busybox", ("docker.io", "library/busybox", None, None,
                         "docker.io/library/busybox", "busybox")),
    ("docker.io/busybox", ("docker.io", "library/busybox", None, None,
                           "docker.io/library/busybox", "busybox")),
    ("docker.io/library/busybox:1", ("docker.io", "library/busybox", "1", None,
                                     "docker.io/library/busybox:1", "busybox:1")),
    ("index.docker.io/busybox", ("docker.io", "library/busybox", None, None,
                                 "docker.io/library/busybox", "busybox")),
    ("index.docker.io/user/app:v1", ("docker.io", "user/app", "v1", None,
                                     "docker.io/user/app:v1", "user/app:v1")),
    ("user/app", ("docker.io", "user/app", None, None, "docker.io/user/app", "user/app")),
    ("user/app/sub", ("docker.io", "user/app/sub", None, None,
                      "docker.io/user/app/sub", "user/app/sub")),
    # only a single-component official name loses "library/"
    ("docker.io/library/a/b", ("docker.io", "library/a/b", None, None,
                               "docker.io/library/a/b", "library/a/b")),
    ("localhost/foo", ("localhost", "foo", None, None, "localhost/foo", "localhost/foo")),
    ("localhost:5000/foo:bar", ("localhost:5000", "foo", "bar", None,
                                "localhost:5000/foo:bar", "localhost:5000/foo:bar")),
    ("localhost:5000/a/b/c", ("localhost:5000", "a/b/c", None, None,
                              "localhost:5000/a/b/c", "localhost:5000/a/b/c")),
    # no slash: "foo:5000" is repository foo, tag 5000
    ("foo:5000", ("docker.io", "library/foo", "5000", None,
                  "docker.io/library/foo:5000", "foo:5000")),
    ("localhost:5000", ("docker.io", "library/localhost", "5000", None,
                        "docker.io/library/localhost:5000", "localhost:5000")),
    ("registry.example.com/team/app:1.0", ("registry.example.com", "team/app", "1.0", None,
                                           "registry.example.com/team/app:1.0",
                                           "registry.example.com/team/app:1.0")),
    ("example.com:8443/a", ("example.com:8443", "a", None, None,
                            "example.com:8443/a", "example.com:8443/a")),
    ("my-registry.local/x", ("my-registry.local", "x", None, None,
                             "my-registry.local/x", "my-registry.local/x")),
    ("[::1]:5000/foo", ("[::1]:5000", "foo", None, None, "[::1]:5000/foo", "[::1]:5000/foo")),
    ("[fe80::1]/foo:t", ("[fe80::1]", "foo", "t", None, "[fe80::1]/foo:t", "[fe80::1]/foo:t")),
    ("192.168.1.1:5000/img", ("192.168.1.1:5000", "img", None, None,
                              "192.168.1.1:5000/img", "192.168.1.1:5000/img")),
    # an upper-case first component can only be a host name
    ("Foo/bar", ("Foo", "bar", None, None, "Foo/bar", "Foo/bar")),
    ("REGISTRY.io/bar", ("REGISTRY.io", "bar", None, None, "REGISTRY.io/bar", "REGISTRY.io/bar")),
    ("user/foo.bar", ("docker.io", "user/foo.bar", None, None,
                      "docker.io/user/foo.bar", "user/foo.bar")),
    ("foo_bar/baz", ("docker.io", "foo_bar/baz", None, None,
                     "docker.io/foo_bar/baz", "foo_bar/baz")),
    ("user/foo__bar", ("docker.io", "user/foo__bar", None, None,
                       "docker.io/user/foo__bar", "user/foo__bar")),
    ("user/foo---bar", ("docker.io", "user/foo---bar", None, None,
                        "docker.io/user/foo---bar", "user/foo---bar")),
    ("a0/b1", ("docker.io", "a0/b1", None, None, "docker.io/a0/b1", "a0/b1")),
    ("busybox:v1.0_rc-1", ("docker.io", "library/busybox", "v1.0_rc-1", None,
                           "docker.io/library/busybox:v1.0_rc-1", "busybox:v1.0_rc-1")),
    ("busybox:_x", ("docker.io", "library/busybox", "_x", None,
                    "docker.io/library/busybox:_x", "busybox:_x")),
    ("busybox:UPPER", ("docker.io", "library/busybox", "UPPER", None,
                       "docker.io/library/busybox:UPPER", "busybox:UPPER")),
    ("busybox:" + "a" * 128, ("docker.io", "library/busybox", "a" * 128, None,
                              "docker.io/library/busybox:" + "a" * 128, "busybox:" + "a" * 128)),
    ("busybox@" + SHA, ("docker.io", "library/busybox", None, SHA,
                        "docker.io/library/busybox@" + SHA, "busybox@" + SHA)),
    ("busybox:1@" + SHA, ("docker.io", "library/busybox", "1", SHA,
                          "docker.io/library/busybox:1@" + SHA, "busybox:1@" + SHA)),
    ("localhost:5000/app@" + SHA, ("localhost:5000", "app", None, SHA,
                                   "localhost:5000/app@" + SHA, "localhost:5000/app@" + SHA)),
    ("app@" + SHA512, ("docker.io", "library/app", None, SHA512,
                       "docker.io/library/app@" + SHA512, "app@" + SHA512)),
    # 255 characters in "docker.io/library/xxx..." is the limit
    ("x" * 237, ("docker.io", "library/" + "x" * 237, None, None,
                 "docker.io/library/" + "x" * 237, "x" * 237)),
]


@pytest.mark.parametrize("text, expected", VALID, ids=[v[0][:40] for v in VALID])
def test_parse_valid(text, expected):
    domain, path, tag, digest, full, familiar = expected
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert ref.name == f"{domain}/{path}"
    assert ref.repository == ref.familiar_name
    # normalising is idempotent
    assert parse(full) == ref
    assert parse(familiar) == ref


INVALID = [
    ("", "invalid reference format"),
    ("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase"),
    ("user/App", "invalid reference format: repository name (user/App) must be lowercase"),
    ("localhost:5000/Foo:bar",
     "invalid reference format: repository name (Foo) must be lowercase"),
    ("[::1]/Foo", "invalid reference format: repository name (Foo) must be lowercase"),
    ("A" * 64,
     "invalid reference format: repository name (library/" + "A" * 64 + ") must be lowercase"),
    (HEX64, f"invalid repository name ({HEX64}), cannot specify 64-byte hexadecimal strings"),
    ("0123456789abcdef" * 4,
     "invalid repository name (" + "0123456789abcdef" * 4 + "), cannot specify 64-byte "
     "hexadecimal strings"),
    ("busybox:latest:extra", "invalid reference format"),
    ("busybox:", "invalid reference format"),
    (":tag", "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("busybox:.tag", "invalid reference format"),
    ("busybox:" + "a" * 129, "invalid reference format"),
    ("busybox:t@g", "invalid reference format"),
    ("-foo", "invalid reference format"),
    ("foo-", "invalid reference format"),
    ("user/foo..bar", "invalid reference format"),
    ("user/foo___bar", "invalid reference format"),
    ("user/.foo", "invalid reference format"),
    ("foo/", "invalid reference format"),
    ("/foo", "invalid reference format"),
    ("foo//bar", "invalid reference format"),
    ("foo bar", "invalid reference format"),
    ("-registry.io/foo", "invalid reference format"),
    ("registry-.io/foo", "invalid reference format"),
    ("localhost:port/foo", "invalid reference format"),
    ("busybox@sha256:abc", "invalid reference format"),  # digest hex shorter than 32
    ("busybox@sha256:" + "a" * 63 + "g", "invalid reference format"),
    ("busybox@" + SHA + ":tag", "invalid reference format"),
    ("busybox@sha256:" + "A" * 64, "invalid checksum digest format"),
    ("busybox@sha256:" + "a" * 32, "invalid checksum digest length"),
    ("busybox@sha256:" + "a" * 65, "invalid checksum digest length"),
    ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
    ("busybox@sha256.x:" + "a" * 64, "unsupported digest algorithm"),
    # Docker checks case on everything before the first ':', digest algorithm included
    ("busybox@Sha256:" + "a" * 64,
     "invalid reference format: repository name (library/busybox@Sha256) must be lowercase"),
    ("x" * 238, "repository name must not be more than 255 characters"),
    ("registry.io/" + "x" * 244, "repository name must not be more than 255 characters"),
    ("busybox:t\u00e9", "invalid reference format"),  # \w is ASCII-only in Go
    ("b\u00fcsybox", "invalid reference format"),
]


@pytest.mark.parametrize("text, message", INVALID, ids=[i[0][:40] for i in INVALID])
def test_parse_invalid(text, message):
    with pytest.raises(InvalidReference) as exc:
        parse(text)
    assert str(exc.value) == message


def test_errors_are_invalid_arguments():
    with pytest.raises(InvalidArgument):
        parse("UPPER")


def test_registry_name_length_counts_the_domain():
    assert parse("registry.io/" + "x" * 243).path == "x" * 243


@pytest.mark.parametrize(
    "text, expected",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("busybox:1", "docker.io/library/busybox:1"),
        ("busybox@" + SHA, "docker.io/library/busybox@" + SHA),
        ("busybox:1@" + SHA, "docker.io/library/busybox:1@" + SHA),
        ("localhost:5000/app", "localhost:5000/app:latest"),
    ],
)
def test_with_default_tag(text, expected):
    assert str(parse(text).with_default_tag()) == expected


def test_with_tag():
    ref = parse("busybox@" + SHA).with_tag("v2")
    assert str(ref) == "docker.io/library/busybox:v2"
    with pytest.raises(InvalidReference, match="invalid tag format"):
        parse("busybox").with_tag("-bad")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("busybox", "docker.io/library/busybox:latest"),
        ("myapp:1.0", "docker.io/library/myapp:1.0"),
        ("localhost:5000/team/app", "localhost:5000/team/app:latest"),
    ],
)
def test_parse_repository_tag(text, expected):
    assert str(parse_repository_tag(text)) == expected


@pytest.mark.parametrize("text", ["busybox@" + SHA, "busybox:1@" + SHA])
def test_parse_repository_tag_refuses_digests(text):
    with pytest.raises(InvalidReference) as exc:
        parse_repository_tag(text)
    assert str(exc.value) == "refusing to create a tag with a digest reference"


def test_parse_repository_tag_validates():
    with pytest.raises(InvalidReference, match="invalid reference format"):
        parse_repository_tag("a:b:c")


def test_reference_is_an_immutable_value():
    ref = parse("busybox")
    with pytest.raises(AttributeError):
        ref.tag = "x"
    with pytest.raises(AttributeError):
        del ref.tag
    with pytest.raises(AttributeError):
        ref.other = 1
    assert {ref: 1}[parse("docker.io/library/busybox")] == 1
    assert Reference("docker.io", "library/busybox") == ref
    assert Reference("docker.io", "library/busybox", "1") != ref
    assert ref != "docker.io/library/busybox"
    assert repr(ref) == (
        "Reference(domain='docker.io', path='library/busybox', tag=None, digest=None)"
    )
    assert pickle.loads(pickle.dumps(ref)) == ref
    match ref:
        case Reference(domain, path, tag, digest):
            assert (domain, path, tag, digest) == ("docker.io", "library/busybox", None, None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a", True),
        ("abc123", True),
        ("0" * 12, True),
        (HEX64, True),
        ("sha256:abc", True),
        ("sha256:" + HEX64, True),
        ("", False),
        ("sha256:", False),
        ("ABC", False),
        ("g", False),
        ("a" * 65, False),
        ("sha512:abc", False),
        ("busybox", False),
        ("abc\n", False),
    ],
)
def test_is_id_prefix(text, expected):
    assert is_id_prefix(text) is expected


@pytest.mark.parametrize("text", [
    "busybox", "busybox:latest", "hello-world", "a", "a.b", "a_b", "a__b", "a---b", "a-b.c_d", "x:1.0",
    "x:Tag_1-2.3", "a___b", "a..b", "-a", "a-", "a:", "a:-x", "a:.x", "a:" + "t" * 129, "A", "a:é",
    "a" * 64, "0" * 64, "f" * 63,
])
def test_fast_path_agrees_with_the_full_grammar(text):
    from dockyard import reference

    fast = reference._parse_simple(text)
    original = reference._parse_simple
    try:
        reference._parse_simple = lambda s: None
        full = reference.parse(text)
    except InvalidReference:
        full = None
    finally:
        reference._parse_simple = original
    if fast is None:
        return  # the full parser decides, whatever the answer
    assert full is not None, f"the fast path accepted {text!r}, which Docker refuses"
    assert (fast.domain, fast.path, fast.tag, fast.digest) == (full.domain, full.path, full.tag, full.digest)
