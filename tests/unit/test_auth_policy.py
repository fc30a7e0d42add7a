"""Roles and permissions: deny by default, MFA for admin and finance, partners scoped."""

from __future__ import annotations

import pytest

from tally.auth.model import ANONYMOUS, OwnerRef, Principal, PrincipalKind, SessionStage
from tally.auth.policy import GRANTS, Permission, Role, allows, requires_mfa
from tally.auth.scope import DirectScope, may_see_account
from tally.ledger.model import Account, OwnerKind


def test_no_roles_grant_nothing():
    assert not any(allows(frozenset(), p) for p in Permission)


def test_every_role_has_an_explicit_grant_list():
    assert set(GRANTS) == set(Role)


@pytest.mark.parametrize("role", [Role.AUDITOR, Role.PARTNER, Role.OPERATIONS, Role.FINANCE])
def test_only_admins_change_users_or_keys(role: Role):
    for p in (Permission.USERS_WRITE, Permission.API_KEYS_WRITE):
        assert not allows(frozenset({role}), p)


def test_the_auditor_reads_everything_and_writes_nothing():
    readable = {p for p in Permission if allows(frozenset({Role.AUDITOR}), p)}
    assert Permission.USERS_WRITE not in readable and Permission.API_KEYS_WRITE not in readable
    assert {Permission.LEDGER_READ, Permission.AUDIT_READ, Permission.USERS_READ} <= readable


def test_admin_and_finance_need_a_second_factor():
    assert requires_mfa(frozenset({Role.ADMIN})) and requires_mfa(frozenset({Role.FINANCE}))
    assert not requires_mfa(frozenset({Role.OPERATIONS, Role.AUDITOR, Role.PARTNER}))


def test_anonymous_and_half_logged_in_principals_may_do_nothing():
    assert not any(ANONYMOUS.may(p) for p in Permission)
    enrolling = Principal(
        PrincipalKind.USER, "u", "u", frozenset({Role.ADMIN}), stage=SessionStage.MFA_ENROLMENT
    )
    assert not any(enrolling.may(p) for p in Permission)


def test_a_partner_sees_only_the_owners_in_its_scope():
    mine = OwnerRef(OwnerKind.PARTNER, "p1")
    partner = Principal(
        PrincipalKind.USER, "u", "u", frozenset({Role.PARTNER}), scope=frozenset({mine})
    )
    visible = DirectScope().visible_owners(partner)
    own = Account("a1", OwnerKind.PARTNER, "p1", "EUR", "commission")
    other = Account("a2", OwnerKind.PARTNER, "p2", "EUR", "commission")
    same_id_other_kind = Account("a3", OwnerKind.OPERATOR, "p1", "EUR", "house")
    assert may_see_account(visible, own)
    assert not may_see_account(visible, other)
    assert not may_see_account(visible, same_id_other_kind)


def test_staff_see_every_owner():
    staff = Principal(PrincipalKind.USER, "u", "u", frozenset({Role.OPERATIONS}))
    assert DirectScope().visible_owners(staff) is None


def test_owner_references_parse_and_refuse_junk():
    assert OwnerRef.parse("operator:op1") == OwnerRef(OwnerKind.OPERATOR, "op1")
    for junk in ("op1", "operator:", "galaxy:x"):
        with pytest.raises(ValueError):
            OwnerRef.parse(junk)


def test_a_feed_pushes_only_within_its_scope_whatever_other_roles_it_holds():
    op1, op2 = OwnerRef(OwnerKind.OPERATOR, "op1"), OwnerRef(OwnerKind.OPERATOR, "op2")
    for roles in ({Role.FEED}, {Role.FEED, Role.AUDITOR}, {Role.FEED, Role.OPERATIONS}):
        key = Principal(PrincipalKind.API_KEY, "k", "k", frozenset(roles), frozenset({op1}))
        assert key.may_push_for(op1) and not key.may_push_for(op2)
    admin = Principal(PrincipalKind.USER, "u", "root", frozenset({Role.ADMIN}))
    assert admin.may_push_for(op2)
    auditor = Principal(PrincipalKind.API_KEY, "k", "k", frozenset({Role.AUDITOR}))
    assert not auditor.may_push_for(op1)
