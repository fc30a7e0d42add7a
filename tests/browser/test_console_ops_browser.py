"""The Alerts and Payouts pages in chromium: an alert raised through the back office's
alert sink appears on the page (and on the Overview) and is acknowledged with a click;
both pages and their detail pages fit a phone's and a desktop's width."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from tally.adapters.memory.backoffice import scratch_auditing
from tally.kernel.alerts import AlertSignal, Severity
from tally.payouts.model import Counterparty, CounterpartyKind
from tests.browser.conftest import ConsoleWorld
from tests.browser.test_console_browser import SCREENSHOTS, login
from tests.support.payouts import StaticPayables, payable

pytestmark = pytest.mark.browser


def _signal(world: ConsoleWorld, key: str, money: int) -> int:
    world.bo.alerts.signal(
        AlertSignal(
            kind="risk.rtp_drift", key=key, severity=Severity.CRITICAL,
            cause=f"RTP of {key} at 112% against 96% certified", at=world.clock.now(),
            provider="acme", region="eu", operator="op1", game=key.split("/")[-1],
            money_at_risk=money, currency="EUR", confidence_permille=800,
            evidence={"observed_rtp": "1.12", "band": "0.93-0.99", "window": "1h"},
            refs=("event:acme:b1:bet",),
        )
    )  # fmt: skip
    from tally.risk.ports import AlertFilter

    (found,) = [a for a in world.bo.risk.alerts.list(AlertFilter(), limit=500) if a.key == key]
    return found.id


def test_a_signalled_alert_appears_and_is_acknowledged(
    page: Page, console_world: ConsoleWorld
) -> None:
    w = console_world
    alert_id = _signal(w, "acme/g-browser", 250_000)
    errors = login(page, w, "admin")
    expect(page.locator('[data-live="a.alerts.critical"]')).to_have_text("1")
    page.get_by_role("link", name="Alerts", exact=True).click()
    row = page.locator(f'tr[data-alert="{alert_id}"]')
    expect(row).to_contain_text("RTP of acme/g-browser")
    expect(row.locator("[data-status]")).to_have_text("open")
    row.get_by_role("link", name=str(alert_id)).click()
    expect(page.locator("[data-evidence]")).to_contain_text("0.93-0.99")
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_have_text("acknowledged")
    expect(page.locator("[data-status]")).to_have_text("acknowledged")
    found = w.bo.risk.alerts.get(alert_id)
    assert found is not None and found.status.value == "acknowledged"
    assert found.acknowledged_by.startswith("user:")
    page.goto(f"{w.url}/console/")
    expect(page.locator('[data-live="a.alerts.critical"]')).to_have_text("0")
    assert errors == []


@pytest.mark.parametrize("width", [390, 1280])
def test_the_new_pages_fit_the_width(
    browser: Browser, console_world: ConsoleWorld, width: int
) -> None:
    w = console_world
    alert_id = _signal(w, f"acme/g-wide-{width}", 9_876_543)
    if not w.bo.payouts.runs(1):
        by = scratch_auditing("system:test", "test")
        w.bo.payouts.payables = StaticPayables(
            [payable("com:pa", "partner:pa", "EUR", 20_000),
             payable("com:pb", "partner:pb", "EUR", 30_000)]
        )  # fmt: skip
        for party in ("pa", "pb"):
            w.bo.payouts.register_counterparty(
                Counterparty(
                    Counterparty.key(CounterpartyKind.PARTNER, party), CounterpartyKind.PARTNER,
                    party, party.upper(), "internal", f"partner:{party}:wallet:EUR",
                ),
                by,
            )  # fmt: skip
        w.bo.payouts.policy = type(w.bo.payouts.policy)(approval_above_default_minor=40_000)
        from tally.payouts.model import RunScope

        w.bo.payouts.build_run(RunScope("all", "", "EUR"), by)
    (run,) = w.bo.payouts.runs(1)
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    login(page, w, "admin")
    for path in (
        "/console/alerts", f"/console/alerts/{alert_id}", "/console/payouts",
        f"/console/payouts/runs/{run.id}",
    ):  # fmt: skip
        response = page.goto(f"{w.url}{path}")
        assert response is not None and response.status == 200, path
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if SCREENSHOTS:
            name = path.strip("/").replace("/", "-")
            page.screenshot(path=f"{SCREENSHOTS}/{width}-{name}.png", full_page=True)
        assert overflow <= 0, (width, path, overflow)
    w.clock.advance(timedelta(seconds=1))
    context.close()
