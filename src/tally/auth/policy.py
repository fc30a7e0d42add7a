"""Roles and permissions. Pure, deny by default: a permission not granted is refused."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    OPERATIONS = "operations"
    AUDITOR = "auditor"  # read-only, everything
    PARTNER = "partner"  # read-only, only its own owners (its subtree of the partner tree)
    FEED = "feed"  # a machine client pushing events: only for the operators/providers in scope
    RISK = "risk"  # the risk team: what the risk watch sees and forecasts


class Permission(StrEnum):
    LEDGER_READ = "ledger.read"
    QUARANTINE_READ = "quarantine.read"
    QUARANTINE_REDRIVE = "quarantine.redrive"
    USERS_READ = "users.read"
    USERS_WRITE = "users.write"
    API_KEYS_READ = "api_keys.read"
    API_KEYS_WRITE = "api_keys.write"
    AUDIT_READ = "audit.read"
    EXPORTS_CREATE = "exports.create"
    METRICS_READ = "metrics.read"
    SETTLEMENT_FIGURES_READ = "settlement.figures.read"  # live totals and fees, all operators
    COMMISSIONS_READ = "settlement.commissions.read"  # partners: their own subtree only
    STATEMENTS_READ = "statements.read"  # partners: their own operator's only
    # Rollbacks still waiting for their original: finance acts on them, auditors see them.
    SETTLEMENT_ORPHANS_READ = "settlement.orphans.read"
    CONFIG_READ = "settlement.config.read"  # contracts, partner trees, FX rates
    CONFIG_WRITE = "settlement.config.write"  # new versions only; nothing is edited in place
    PROVIDER_SECRETS_READ = "provider_secrets.read"  # names and dates, never values
    PROVIDER_SECRETS_WRITE = "provider_secrets.write"
    EVENTS_PUSH = "events.push"  # partner feeds and batch-report uploads
    # Runs, break reports and breaks: finance works them, operations chase the providers
    # about missing and duplicate lines, auditors see them. Never partners: a break names
    # other operators' transactions and the provider's own figures.
    RECONCILIATION_READ = "reconciliation.read"
    # Upload a report and run it, assign and close breaks, reopen them, re-drive a line
    # missing in Tally: each changes the books or what Tally holds, so finance only.
    RECONCILIATION_WRITE = "reconciliation.write"
    # The risk watch's forecasts (per region and provider, every operator's traffic).
    RISK_FORECASTS_READ = "risk.forecasts.read"


P = Permission
_READ_EVERYTHING = frozenset(
    {
        P.LEDGER_READ,
        P.QUARANTINE_READ,
        P.USERS_READ,
        P.API_KEYS_READ,
        P.AUDIT_READ,
        P.EXPORTS_CREATE,  # an export is a read; it is audited all the same
        P.METRICS_READ,
        P.PROVIDER_SECRETS_READ,
        P.SETTLEMENT_FIGURES_READ,
        P.COMMISSIONS_READ,
        P.STATEMENTS_READ,
        P.SETTLEMENT_ORPHANS_READ,
        P.CONFIG_READ,
        P.RECONCILIATION_READ,
        P.RISK_FORECASTS_READ,
    }
)

GRANTS: Mapping[Role, frozenset[Permission]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Permission),
        Role.FINANCE: frozenset(
            {
                P.LEDGER_READ,
                P.QUARANTINE_READ,
                P.QUARANTINE_REDRIVE,
                P.EXPORTS_CREATE,
                P.METRICS_READ,
                P.SETTLEMENT_FIGURES_READ,
                P.COMMISSIONS_READ,
                P.STATEMENTS_READ,
                P.SETTLEMENT_ORPHANS_READ,
                P.CONFIG_READ,
                P.CONFIG_WRITE,
                P.RECONCILIATION_READ,
                P.RECONCILIATION_WRITE,
                P.RISK_FORECASTS_READ,
            }
        ),
        Role.OPERATIONS: frozenset(
            {
                P.LEDGER_READ,
                P.QUARANTINE_READ,
                P.QUARANTINE_REDRIVE,
                P.METRICS_READ,
                P.SETTLEMENT_FIGURES_READ,
                P.COMMISSIONS_READ,
                P.CONFIG_READ,
                P.RECONCILIATION_READ,
                P.RISK_FORECASTS_READ,
            }
        ),
        Role.RISK: frozenset({P.SETTLEMENT_FIGURES_READ, P.METRICS_READ, P.RISK_FORECASTS_READ}),
        Role.AUDITOR: _READ_EVERYTHING,
        # Partner reads are further narrowed to its own owners by the scope resolver.
        Role.PARTNER: frozenset({P.LEDGER_READ, P.COMMISSIONS_READ, P.STATEMENTS_READ}),
        # Narrowed to the operators (feeds) and providers (reports) in its scope.
        Role.FEED: frozenset({P.EVENTS_PUSH}),
    }
)

# Roles whose users must pass a TOTP second factor to get a full session.
MFA_REQUIRED: frozenset[Role] = frozenset({Role.ADMIN, Role.FINANCE})

# Roles that see every owner; any other role sees only the owners its scope grants.
UNSCOPED: frozenset[Role] = frozenset(
    {Role.ADMIN, Role.FINANCE, Role.OPERATIONS, Role.AUDITOR, Role.RISK}
)


def permissions(roles: frozenset[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= GRANTS.get(role, frozenset())
    return frozenset(granted)


def allows(roles: frozenset[Role], permission: Permission) -> bool:
    return permission in permissions(roles)


def requires_mfa(roles: frozenset[Role]) -> bool:
    return bool(roles & MFA_REQUIRED)


def is_unscoped(roles: frozenset[Role]) -> bool:
    return bool(roles & UNSCOPED)
