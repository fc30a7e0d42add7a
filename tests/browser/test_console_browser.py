"""The console in chromium: login with TOTP, every page as each role, figures equal to
the API's and the ledger's, partner scope by URL, closing a period, live figures, the
phone layout, CSRF and the CSP."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tally.kernel.money import format_amount
from tests.browser.conftest import ROLES, ConsoleWorld
from tests.integration.apiworld import PASSWORD

pytestmark = pytest.mark.browser

PAGES = (
    "/console/",
    "/console/ledger",
    "/console/settlement",
    "/console/quarantine",
    "/console/reconciliation",
    "/console/audit",
    "/console/admin",
    "/console/alerts",
    "/console/payouts",
)
MAY_OPEN = {
    "admin": set(PAGES),
    "finance": set(PAGES) - {"/console/audit", "/console/admin", "/console/alerts"},
    "operations": set(PAGES) - {"/console/audit", "/console/admin", "/console/payouts"},
    "auditor": set(PAGES),
    "partner": {
        "/console/",
        "/console/ledger",
        "/console/settlement",
        "/console/alerts",
        "/console/payouts",
    },
}
SCREENSHOTS = os.environ.get("TALLY_CONSOLE_SCREENSHOTS", "")


def login(page: Page, world: ConsoleWorld, name: str) -> list[str]:
    """Log in through the form; returns the list the page's console errors go into."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A page answered 403 on purpose logs "Failed to load resource"; anything else
        # (a script error, something the CSP refused) is an error of the console's.
        if message.type == "error" and "status of 403" not in message.text:
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{world.url}/console/login")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    code = world.code(name)
    if code:
        page.get_by_label("Authenticator code").fill(code)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    return errors


def test_login_needs_the_right_totp_code(page: Page, console_world: ConsoleWorld) -> None:
    page.goto(f"{console_world.url}/console/login")
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Authenticator code").fill("000000")
    page.get_by_role("button", name="Log in").click()
    error = page.locator("#err-totp_code")
    expect(error).to_contain_text("invalid_mfa_code")
    expect(page.get_by_label("Authenticator code")).to_have_attribute("aria-invalid", "true")
    login(page, console_world, "finance")


@pytest.mark.parametrize("name", ROLES)
def test_every_page_as_each_role(browser: Browser, console_world: ConsoleWorld, name: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = login(page, console_world, name)
    links = page.locator("header nav a")
    shown = {links.nth(i).get_attribute("href") for i in range(links.count())}
    assert shown == MAY_OPEN[name]
    for path in PAGES:
        response = page.goto(f"{console_world.url}{path}")
        assert response is not None
        assert response.status == (200 if path in MAY_OPEN[name] else 403), (name, path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
    # No script error and nothing refused by the CSP on any page.
    assert errors == []
    context.close()


def test_overview_figures_equal_the_api_and_the_ledger(
    page: Page, console_world: ConsoleWorld
) -> None:
    login(page, console_world, "finance")
    token = console_world.api_token("finance")
    for dim in ("provider", "operator", "region", "game_type"):
        for row in console_world.api(token, "/v1/settlement/figures", by=dim):
            value, cur = row["key"][dim], row["currency"]
            for name in ("turnover", "wins", "ggr", "bonuses", "jackpot_contributions", "ngr"):
                cell = page.locator(f'[data-live="t.{dim}.{value}.{cur}.{name}"]')
                expect(cell).to_have_text(row[name])
    # The commission accrued for pa-sub equals the ledger's commission account... in time;
    # here: the API's accrual, to the minor unit.
    for row in console_world.api(token, "/v1/settlement/commissions"):
        key = row["key"]
        cell = page.locator(
            f'[data-live="c.{key["agent"]}.{key["operator"]}.{key["period"]}.{row["currency"]}"]'
        )
        expect(cell).to_have_text(f"{row['accrued']} {row['currency']}")
    # Ledger explorer: the fee account's balance equals the ledger's and the API's.
    fee = "provider:acme:fee_payable:op1:EUR"
    balance = console_world.app.ledger.balance(fee)
    assert balance is not None
    api = console_world.api(token, f"/v1/accounts/{fee}/balance")
    page.goto(f"{console_world.url}/console/ledger?account={fee}")
    shown = page.locator('[data-balance="now"]')
    expect(shown).to_have_text(api["net_credit"])
    assert api["net_credit"] == format_amount(balance.net_credit, "EUR")


def test_a_partner_cannot_reach_another_subtree_by_url(
    page: Page, console_world: ConsoleWorld
) -> None:
    login(page, console_world, "partner")
    # Its overview lists only its own subtree's commissions (pa and pa-sub, never pb).
    commissions = page.locator("[data-table=commissions]")
    expect(commissions).to_contain_text("pa-sub")
    expect(commissions).not_to_contain_text("pb")
    expect(page.locator("[data-table=totals-provider]")).to_have_count(0)
    for url in (
        "/console/ledger?account=partner:pb:commission:EUR",
        "/console/ledger?owner=partner:pb",
        "/console/ledger?owner=operator:op2",
    ):
        response = page.goto(f"{console_world.url}{url}")
        assert response is not None and response.status == 404, url
    for url in ("/console/audit", "/console/quarantine", "/console/admin"):
        response = page.goto(f"{console_world.url}{url}")
        assert response is not None and response.status == 403, url
    page.goto(f"{console_world.url}/console/settlement")
    tree = page.locator("[data-tree=op1]")
    expect(tree).to_contain_text("pa-sub")
    expect(page.locator("[data-tree=op2]")).to_have_count(0)


def test_closing_a_period_end_to_end(page: Page, console_world: ConsoleWorld) -> None:
    login(page, console_world, "finance")
    page.goto(f"{console_world.url}/console/settlement")
    row = page.locator('[data-period="acme-std/op1/2026-03"]')
    expect(row).to_contain_text("open")
    page.locator("#contract").fill("acme-std")
    page.locator("#operator").fill("op1")
    page.locator("#period").fill("2026-03")
    # Without the confirmation ticked: refused next to the box, nothing closed.
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Close the period").click()
    expect(page.locator("#err-confirm")).to_contain_text("tick to confirm")
    assert console_world.app.settlement_store.statements() == []
    page.get_by_label("I confirm: close this period").check()
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Close the period").click()
    expect(page.get_by_role("status")).to_contain_text("Closed acme-std/op1/2026-03")
    [statement] = console_world.app.settlement_store.statements()
    expect(row).to_contain_text("closed")
    expect(page.get_by_role("status")).to_contain_text(statement.sha256)
    # The statement: viewed, and downloaded as CSV exactly as frozen.
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV").first.click()
    assert Path(download.value.path()).read_bytes() == statement.csv
    # Its audit record names the user who closed it.
    admin_token = console_world.api_token("admin")
    records = console_world.api(admin_token, "/v1/audit-records", action="period.closed")
    [record] = records["items"]
    assert record["target"] == "period:acme-std:op1:2026-03"
    assert record["actor"].startswith("user:")
    # Operations may not close: the form is not offered and a forged post is refused.
    page.context.clear_cookies()
    login(page, console_world, "operations")
    page.goto(f"{console_world.url}/console/settlement")
    expect(page.get_by_role("button", name="Close the period")).to_have_count(0)


def test_a_live_figure_updates_within_two_seconds(page: Page, console_world: ConsoleWorld) -> None:
    login(page, console_world, "finance")
    cell = page.locator('[data-live="t.provider.acme.EUR.turnover"]')
    expect(page.locator("[data-live-status]")).to_have_class(re.compile(r"\bon\b"))
    before = cell.inner_text()
    token = console_world.api_token("finance")
    started = time.monotonic()
    console_world.bet_and_win(1_234, 0)
    [row] = console_world.api(token, "/v1/settlement/figures", by="provider", provider="acme")
    assert row["turnover"] != before
    expect(cell).to_have_text(row["turnover"], timeout=2_000)
    assert time.monotonic() - started < 2.0 + 0.5  # the feed, plus this test's own work


@pytest.mark.parametrize("width", [390, 1280])
def test_no_horizontal_scroll_at_phone_and_desktop_widths(
    browser: Browser, console_world: ConsoleWorld, width: int
) -> None:
    context = browser.new_context(viewport={"width": width, "height": 844})
    page = context.new_page()
    login(page, console_world, "admin")
    for path in (*PAGES, "/console/ledger?account=provider:acme:fee_payable:op1:EUR"):
        page.goto(f"{console_world.url}{path}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        if SCREENSHOTS:
            name = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-")
            page.screenshot(path=f"{SCREENSHOTS}/{width}-{name or 'overview'}.png", full_page=True)
        assert overflow <= 0, (width, path, overflow)
    if SCREENSHOTS:
        page.goto(f"{console_world.url}/console/")
        page.screenshot(path=f"{SCREENSHOTS}/console-overview-{width}.png", full_page=True)
    context.close()


def test_keyboard_reaches_the_content_and_the_navigation(
    page: Page, console_world: ConsoleWorld
) -> None:
    login(page, console_world, "auditor")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Overview")).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/ledger$"))


def test_csrf_is_refused_and_the_csp_is_sent(page: Page, console_world: ConsoleWorld) -> None:
    login(page, console_world, "admin")
    # The session cookie rides along, but without the form's token nothing happens.
    response = page.request.post(
        f"{console_world.url}/console/admin/users",
        form={"username": "eve", "password": "a long enough password", "roles.auditor": "on"},
    )
    assert response.status == 403
    assert "csrf_refused" in response.text()
    token = console_world.api_token("admin")
    names = {u["username"] for u in console_world.api(token, "/v1/users")["items"]}
    assert "eve" not in names
    # The session cookie is HttpOnly and SameSite=Strict.
    [cookie] = [c for c in page.context.cookies() if c["name"] == "tally_console"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    headers = httpx.get(f"{console_world.url}/console/login").headers
    assert "script-src 'self'" in headers["content-security-policy"]
