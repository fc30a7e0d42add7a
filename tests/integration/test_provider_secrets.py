"""Provider secrets: sealed at rest, never returned, never in the audit trail or the logs."""

from __future__ import annotations

from tests.integration.apiworld import World

VALUE = "prov-secret-VALUE-9f3a"


def test_a_provider_secret_is_sealed_at_rest_and_readable_only_in_process(world: World):
    h = world.headers("admin")
    r = world.client.put("/v1/provider-secrets/acme/api_key", json={"value": VALUE}, headers=h)
    assert r.status_code == 204
    listed = world.client.get("/v1/provider-secrets", headers=world.headers("auditor")).json()
    assert [(x["provider"], x["name"]) for x in listed] == [("acme", "api_key")]
    assert VALUE not in str(listed)
    assert world.bo.provider_secrets.get("acme", "api_key") == VALUE
    with world.bo.store._transaction() as cur:  # type: ignore[attr-defined]
        stored = repr(list(cur.execute("SELECT * FROM provider_secrets")))
        audit = repr(list(cur.execute("SELECT * FROM audit_records")))
    assert VALUE not in stored and VALUE.encode().hex() not in stored
    assert VALUE not in audit and "provider_secret.set" in audit


def test_a_sealed_secret_moved_to_another_name_does_not_open(world: World):
    import pytest

    from tally.security.secretbox import SecretBoxError

    world.bo.provider_secrets.set("acme", "api_key", VALUE, actor="system")
    sealed = world.bo.store.get_secret("acme", "api_key")
    assert sealed is not None
    from tally.audit.chain import AuditEntry
    from tally.security.provider_secrets import SecretInfo

    now = world.clock.now()
    world.bo.store.put_secret(
        SecretInfo("evil", "api_key", now, "x"), sealed, AuditEntry("x", "x", "x", now)
    )
    with pytest.raises(SecretBoxError):
        world.bo.provider_secrets.get("evil", "api_key")


def test_deleting_an_unknown_secret_is_not_found(world: World):
    r = world.client.delete("/v1/provider-secrets/acme/nothing", headers=world.headers("admin"))
    assert (r.status_code, r.json()["error"]["code"]) == (404, "secret_not_found")
