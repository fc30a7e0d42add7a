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
    # The risk team: what the risk watch sees and forecasts; it watches alerts, silences
    # them, approves and undoes playbook actions.
    RISK = "risk"


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
    # Payout runs, payouts and each counterparty's owed / paid / carried forward: finance
    # and auditors see all; a partner sees only its own subtree's counterparties.
    PAYOUTS_READ = "payouts.read"
    # Register counterparties' payment details and build runs (the maker).
    PAYOUTS_WRITE = "payouts.write"
    # Approve a run over the policy's amount with a fresh TOTP code (the checker, never
    # the run's maker: the use case refuses that).
    PAYOUTS_APPROVE = "payouts.approve"
    # Alerts with their evidence, silences, rules and playbook actions. Partners read only
    # the alerts about their own operators and subtree (narrowed by the scope resolver).
    ALERTS_READ = "alerts.read"
    # Acknowledge an alert, create or expire a silence: each audited.
    ALERTS_ACT = "alerts.act"
    # Save a new version of the alert rules (hysteresis, inhibitions, playbook bindings).
    ALERT_RULES_WRITE = "alerts.rules.write"
    # Approve, reject or undo a playbook's action (a suspended game, a held settlement).
    PLAYBOOKS_ACT = "playbooks.act"
    # Close a settlement period from the console: freezes it and writes its statement.
    SETTLEMENT_CLOSE = "settlement.close"
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
        P.PAYOUTS_READ,
        P.ALERTS_READ,
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
                P.PAYOUTS_READ,
                P.PAYOUTS_WRITE,
                P.PAYOUTS_APPROVE,
                P.SETTLEMENT_CLOSE,
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
                P.ALERTS_READ,
                P.RISK_FORECASTS_READ,
            }
        ),
        Role.AUDITOR: _READ_EVERYTHING,
        # Partner reads are further narrowed to its own owners by the scope resolver.
        Role.PARTNER: frozenset(
            {
                P.LEDGER_READ,
                P.COMMISSIONS_READ,
                P.STATEMENTS_READ,
                P.PAYOUTS_READ,
                P.ALERTS_READ,
            }
        ),
        # Narrowed to the operators (feeds) and providers (reports) in its scope.
        Role.FEED: frozenset({P.EVENTS_PUSH}),
        Role.RISK: frozenset(
            {
                P.ALERTS_READ,
                P.ALERTS_ACT,
                P.ALERT_RULES_WRITE,
                P.PLAYBOOKS_ACT,
                P.METRICS_READ,
                P.SETTLEMENT_FIGURES_READ,
                P.CONFIG_READ,
                P.RECONCILIATION_READ,
                P.AUDIT_READ,
                P.RISK_FORECASTS_READ,
            }
        ),
    }
)

# Roles whose users must pass a TOTP second factor to get a full session.
# Risk too: its playbooks suspend games and hold settlements.
MFA_REQUIRED: frozenset[Role] = frozenset({Role.ADMIN, Role.FINANCE, Role.RISK})

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
