"""Which startup parameters may pass through the sidecar.

Every parameter in a StartupMessage other than user/database/options/replication is
applied by the server as a setting before the first statement, i.e. before sqlguard can
judge anything: `role=admin` in the startup packet would be SET ROLE without a statement.
So only harmless settings pass, each with a reason to refuse the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlguard.wire.errors import FEATURE_NOT_SUPPORTED, INSUFFICIENT_PRIVILEGE, PgError

# Settings drivers send at startup (libpq, pgjdbc, npgsql, asyncpg) that change nothing
# a rule depends on. Names are compared lower-case, as PostgreSQL does for GUCs.
HARMLESS_SETTINGS = frozenset(
    {
        "application_name",
        "client_encoding",
        "datestyle",
        "timezone",
        "extra_float_digits",
        "intervalstyle",
        "search_path",
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "geqo",
        "bytea_output",
        "standard_conforming_strings",
    }
)
# Client-only encodings whose multibyte characters may contain the bytes of a quote or a
# backslash: the firewall's tokenizer would read a different statement than the server.
_UNSAFE_ENCODINGS = frozenset({"sjis", "shiftjis2004", "big5", "gbk", "gb18030", "uhc", "johab"})
_FALSE = frozenset({"", "0", "false", "off", "no", "f", "n"})


@dataclass(frozen=True, slots=True)
class StartupCheck:
    """Parameters to send upstream, protocol options to report as unsupported, or an error."""

    upstream: dict[str, str]
    protocol_options: list[str]
    error: PgError | None = None


@dataclass(slots=True)
class ProtocolNegotiation:
    """The protocol minor version agreed with client and upstream (docs, "Protocol versions").

    The client is told once, before anything else, if it asked for a newer version or for
    `_pq_.` options; the upstream may lower the version further with its own answer.
    """

    requested_minor: int
    minor: int
    unsupported: list[str] = field(default_factory=list)
    pending: bool = True

    @property
    def needed(self) -> bool:
        return self.minor != self.requested_minor or bool(self.unsupported)


def check_startup_params(params: dict[str, str]) -> StartupCheck:
    """Keep what may pass; refuse the whole connection on anything that would bypass rules.

    >>> check_startup_params({"user": "ann", "role": "admin"}).error.message
    'startup parameter "role" cannot be set through sqlguard'
    """
    upstream: dict[str, str] = {}
    options: list[str] = []
    for key, value in params.items():
        if key.startswith("_pq_."):
            options.append(key)
            continue
        error = _check_param(key, value)
        if error:
            return StartupCheck({}, [], error)
        upstream[key] = value
    if "user" not in upstream:
        return StartupCheck({}, [], _refuse_user())
    return StartupCheck(upstream, options)


def _check_param(key: str, value: str) -> PgError | None:
    if key in ("user", "database"):
        return None
    if key == "replication":
        return None if value.lower() in _FALSE else _refuse_replication()
    if key == "options":
        return _check_options(value)
    return _check_setting(key.lower(), value)


def _check_setting(name: str, value: str) -> PgError | None:
    if name not in HARMLESS_SETTINGS:
        return _refuse_setting(name)
    if name == "standard_conforming_strings" and value.lower() not in ("on", "true", "1"):
        return _refuse_setting(name, "Turning it off changes how string literals are read.")
    if name == "client_encoding" and value.lower().replace("_", "") in _UNSAFE_ENCODINGS:
        return _refuse_setting(name, f"The encoding {value} can hide quotes inside characters.")
    return None


def _check_options(options: str) -> PgError | None:
    """`options` carries command-line switches; only `-c name=value` of harmless settings pass."""
    words = split_options(options)
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = "-c" + words.pop(0)
        if word.startswith("-c") or word.startswith("--"):
            setting = word[2:]
        else:
            return _refuse_setting(f"options {word}")
        name, sep, value = setting.partition("=")
        if not sep:
            return _refuse_setting(f"options {word}")
        error = _check_setting(name.strip().lower().replace("-", "_"), value)
        if error:
            return error
    return None


def split_options(options: str) -> list[str]:
    """Split like PostgreSQL's pg_split_opts: whitespace separates, backslash escapes.

    >>> split_options(r"-c search_path=a\\ b  -c x=1")
    ['-c', 'search_path=a b', '-c', 'x=1']
    """
    words: list[str] = []
    current: list[str] = []
    escaped = False
    for char in options:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char.isspace():
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def _refuse_setting(name: str, why: str = "") -> PgError:
    detail = "Startup parameters are applied before sqlguard can check them."
    return PgError(
        "FATAL",
        INSUFFICIENT_PRIVILEGE,
        f'startup parameter "{name}" cannot be set through sqlguard',
        f"{why} {detail}".strip(),
        "Connect without it (check PGOPTIONS and the connection string) and use SET after "
        "connecting, where sqlguard's rules apply.",
    )


def _refuse_replication() -> PgError:
    return PgError(
        "FATAL",
        FEATURE_NOT_SUPPORTED,
        "replication connections are not supported through sqlguard",
        "A replication connection streams or changes the whole database outside SQL rules.",
        "Connect replication clients (pg_basebackup, subscriptions) to the database server "
        "directly, with a role meant for replication.",
    )


def _refuse_user() -> PgError:
    return PgError("FATAL", "28000", "no PostgreSQL user name specified in startup packet")
