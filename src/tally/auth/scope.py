"""Which ledger owners a principal may see.

A port, so that the settlement work can back it with the real partner tree (an
operator sees every agent beneath it). Until then a scoped principal sees exactly
the owners it was given.
"""

from __future__ import annotations

from typing import Protocol

from tally.auth.model import OwnerRef, Principal
from tally.ledger.model import Account


class ScopeResolver(Protocol):
    def visible_owners(self, principal: Principal) -> frozenset[OwnerRef] | None:
        """The owners ``principal`` may see, or None for every owner."""
        ...


class DirectScope:
    """A scoped principal sees the owners named on it, and nothing beneath (no tree yet)."""

    def visible_owners(self, principal: Principal) -> frozenset[OwnerRef] | None:
        if principal.unscoped:
            return None
        return principal.scope


def may_see_owner(visible: frozenset[OwnerRef] | None, owner: OwnerRef) -> bool:
    return visible is None or owner in visible


def may_see_account(visible: frozenset[OwnerRef] | None, account: Account) -> bool:
    return may_see_owner(visible, OwnerRef(account.owner_kind, account.owner_id))
