"""The ``identities:`` section of the sidecar's config: managed identities mode.

    identities:
      store: identities.yaml          # people, groups, SCRAM verifiers, expiries
      password_auth: scram-sha-256    # or "password": also cleartext (use it only with TLS)
      upstream_roles:                 # how the sidecar itself logs in as each mapped role
        sqlguard_analysts: {password_file: /run/secrets/analysts}
        sqlguard_readonly: {password_env: SQLGUARD_READONLY_PASSWORD}

With this section the sidecar authenticates every person itself and connects upstream as
the person's mapped role; people never learn a database password. A role without an entry
logs in without a password (trust, peer or certificate authentication upstream). MD5 is not
offered: it needs a password-equivalent hash on the sidecar, which is what SCRAM avoids.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlguard.config import ConfigError

PASSWORD_AUTH = ("scram-sha-256", "password")
_KEYS = frozenset({"store", "password_auth", "upstream_roles"})
_SECRET_KEYS = frozenset({"password_file", "password_env"})


@dataclass(frozen=True, slots=True)
class RoleSecret:
    """Where the password of one upstream role is read from (a mounted secret or a variable).

    Read again on every reload, so a rotated secret is picked up without a restart.
    """

    role: str
    password_file: Path | None = None
    password_env: str = ""

    def read(self) -> str:
        """The password now; ConfigError naming the source (never the value) if unavailable."""
        where = f"identities.upstream_roles.{self.role}"
        if self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{where}.password_file: cannot read {self.password_file}: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:  # its message would quote a byte of the secret
                raise ConfigError(
                    f"{where}.password_file: {self.password_file} is not UTF-8 text"
                ) from None
            password = text.rstrip("\r\n")
        else:
            password = os.environ.get(self.password_env, "")
        if not password:
            source = self.password_file or f"environment variable {self.password_env}"
            raise ConfigError(f"{where}: {source} is empty or unset; put the role's password there")
        return password


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    store: Path
    password_auth: str = "scram-sha-256"
    upstream_roles: Mapping[str, RoleSecret] = field(default_factory=dict)

    @property
    def cleartext_allowed(self) -> bool:
        return self.password_auth == "password"


def identity_settings(raw: Any, base_dir: Path) -> IdentitySettings:
    """Validate the section; relative paths are taken from the config file's directory."""
    if not isinstance(raw, Mapping):
        raise ConfigError("identities must be a mapping (store, password_auth, upstream_roles)")
    values = {str(key).replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(values) - _KEYS)
    if unknown:
        raise ConfigError(
            f"identities: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}"
        )
    if not isinstance(values.get("store"), str) or not values["store"]:
        raise ConfigError("identities.store: give the identities file, e.g. identities.yaml")
    password_auth = str(values.get("password_auth", "scram-sha-256")).lower()
    if password_auth not in PASSWORD_AUTH:
        raise ConfigError(
            f"identities.password_auth must be scram-sha-256 or password, not {password_auth!r}"
            " (md5 is not offered: it would need a password-equivalent hash on the sidecar)"
        )
    roles = values.get("upstream_roles") or {}
    if not isinstance(roles, Mapping):
        raise ConfigError("identities.upstream_roles must map role names to a password source")
    return IdentitySettings(
        store=base_dir / values["store"],
        password_auth=password_auth,
        upstream_roles={
            str(role): _secret(str(role), spec, base_dir) for role, spec in roles.items()
        },
    )


def _secret(role: str, spec: Any, base_dir: Path) -> RoleSecret:
    where = f"identities.upstream_roles.{role}"
    if not isinstance(spec, Mapping) or len(spec) != 1 or set(spec) - _SECRET_KEYS:
        raise ConfigError(
            f"{where}: give exactly one of password_file: PATH or password_env: VARIABLE"
        )
    ((key, value),) = spec.items()
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{key}: give a file path or a variable name, not {value!r}")
    if key == "password_file":
        return RoleSecret(role, password_file=base_dir / value)
    return RoleSecret(role, password_env=value)
