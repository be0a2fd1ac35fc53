"""Who a rule or a group is about: users, groups, application names, client addresses.

Every given criterion must hold (a user from an address range is narrower than either); a
list holds if any item does. User and application patterns are case-sensitive, like
PostgreSQL role names: a looser match could put someone in a more trusted group.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlguard.policy.patterns import Patterns

if TYPE_CHECKING:
    from sqlguard.policy.model import Identity

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCAL = "local"
"""How rule files and identities name a Unix-domain socket connection (it has no address)."""


@dataclass(frozen=True, slots=True)
class Addresses:
    """CIDR ranges, and ``local`` for Unix-domain sockets.

    >>> office = Addresses((ipaddress.ip_network("10.0.0.0/8"),))
    >>> office.contains("10.1.2.3"), office.contains("::1"), office.contains("local")
    (True, False, False)
    """

    networks: tuple[Network, ...]
    local: bool = False

    def contains(self, client_addr: str) -> bool:
        """Is the client's address (an IP address, or ``local``) in one of the ranges?"""
        if client_addr == LOCAL:
            return self.local
        try:
            address = ipaddress.ip_address(client_addr.partition("%")[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 on a dual-stack socket
        return any(address in network for network in self.networks)


@dataclass(frozen=True, slots=True)
class Subject:
    """The ``applies_to`` of a rule, or the membership criteria of a group.

    ``names_users``: a rule that names users is an exception for them, and beats rules that
    do not (see the engine's precedence).

    >>> Subject(users=Patterns.compile(["ann"], case_sensitive=True)).names_users
    True
    """

    users: Patterns | None = None
    groups: frozenset[str] | None = None
    applications: Patterns | None = None
    addresses: Addresses | None = None

    @property
    def names_users(self) -> bool:
        return self.users is not None

    def matches(self, identity: Identity, groups: frozenset[str]) -> bool:
        """Does the subject cover ``identity``, a member of ``groups``?"""
        return (
            (self.users is None or self.users.matches(identity.user))
            and (self.groups is None or not self.groups.isdisjoint(groups))
            and (self.applications is None or self.applications.matches(identity.application_name))
            and (self.addresses is None or self.addresses.contains(identity.client_addr))
        )
