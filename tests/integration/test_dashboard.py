"""``rollguard dashboard`` in a real browser (Debian's headless Chromium, driven by selenium)
against the local control plane and the session's operator: the list, a decision pending
approval with its charts and options, a cross-site POST refused, an approval as the
kubeconfig's user, and the page a user without rights sees.

With ``ROLLGUARD_SCREENSHOTS=DIR`` the test saves the list, the decision and the no-rights page
as ``DIR/dashboard-*.png`` (1280 px wide), the images of docs/operating/dashboard.md.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_fixtures import Scenario, grant, needs_approval, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from devenv.launcher import EnvInfo
from devenv.operatorproc import OperatorProcess
from devenv.testing import Kubectl

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WIDTH = 1280


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium that talks to nothing but the pages it is sent to."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed (tools/install-deps.sh installs the "
            "Debian packages chromium and chromium-driver)",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory(prefix="rollguard-chromium-") as profile:
        for arg in (
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={WIDTH},900",
        ):  # fmt: skip
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        try:
            yield driver
        finally:
            driver.quit()


@contextlib.contextmanager
def dashboard(env: EnvInfo, context: str, namespace: str) -> Iterator[str]:
    """``rollguard dashboard`` as a subprocess with the environment's kubeconfig and
    ``context``, on a free loopback port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rollguard.cli", "dashboard", "--port", "0",
         f"--kubeconfig={env.kubeconfig}", f"--context={context}", "-n", namespace],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"on (http://127\.0\.0\.1:\d+/) as (\S+)", first)
        if not found:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the dashboard did not start: {first!r} {err}")
        yield found[1]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def _screenshot(browser: webdriver.Chrome, name: str) -> None:
    """The whole page as DIR/dashboard-NAME.png when ROLLGUARD_SCREENSHOTS=DIR."""
    where = os.environ.get("ROLLGUARD_SCREENSHOTS")
    if not where:
        return
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    metrics = {"width": WIDTH, "height": max(height, 600), "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    Path(where).mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(Path(where) / f"dashboard-{name}.png"))
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@contextlib.contextmanager
def foreign_page(target: str) -> Iterator[str]:
    """A page of another loopback origin whose form posts an approval to ``target``, as a
    cross-site attacker's would; yields its URL."""
    page = (
        f'<html><body><form id="f" method="post" action="{target}">'
        '<input name="verdict" value="Approve"><input name="reason" value="forged">'
        '<button id="go" type="submit">go</button></form></body></html>'
    ).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.2:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_alice_sees_charts_and_approves_as_herself_and_cross_site_posts_are_refused(
    operator: OperatorProcess,
    scenario: Scenario,
    kubectl: Kubectl,
    env: EnvInfo,
    browser: webdriver.Chrome,
) -> None:
    grant(kubectl, scenario.ns, "rollguard-approver", group="ml-oncall")
    scenario.setup(policy=needs_approval())
    wait_for("Healthy", lambda: scenario.phase() == "Healthy", operator=operator)
    scenario.set_profile("errors")
    decisions = wait_for("a decision", scenario.decisions, timeout=60, operator=operator)
    name = decisions[0]["metadata"]["name"]

    def phase() -> str | None:
        return (scenario.get("rollbackdecisions", name).get("status") or {}).get("phase")

    wait_for("PendingApproval", lambda: phase() == "PendingApproval", operator=operator)

    with dashboard(env, "alice", scenario.ns) as base:
        browser.get(base)
        row = browser.find_element(By.CSS_SELECTOR, "#model-deployments tbody tr")
        assert "fraud" in row.text and name in row.text
        assert "may not list ModelDeployments in all namespaces" in browser.page_source
        _screenshot(browser, "list")

        row.find_element(By.LINK_TEXT, name).click()
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert len(charts) == 2  # the score against the curve, and error_rate
        assert browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline.samples")
        options = browser.find_element(By.CSS_SELECTOR, "#options table").text
        assert "Rollback" in options and "(recommended)" in options
        assert "verifies" in browser.find_element(By.ID, "chain").text
        _screenshot(browser, "decision")
        decision_url = browser.current_url

        # Another origin's form, and a POST without the token: refused, nothing written.
        with foreign_page(decision_url) as attacker:
            browser.get(attacker)
            browser.find_element(By.ID, "go").click()
            assert "refused as a cross-site request" in browser.page_source
        request = urllib.request.Request(
            decision_url, data=b"verdict=Approve&reason=forged", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        assert "approval" not in scenario.get("rollbackdecisions", name)["spec"]

        browser.get(decision_url)
        browser.find_element(By.ID, "reason-approve").send_keys("error spike confirmed")
        browser.find_element(By.ID, "approve").click()
        assert browser.find_element(By.ID, "result").text == "Approved as alice"

    approval = scenario.get("rollbackdecisions", name)["spec"]["approval"]
    assert approval == {"decision": "Approve", "by": "alice", "reason": "error spike confirmed"}


def test_a_user_without_rights_sees_which_permission_is_missing(
    crds_installed: None, namespace: str, env: EnvInfo, browser: webdriver.Chrome
) -> None:
    with dashboard(env, "mallory", namespace) as base:
        browser.get(base)
        missing = browser.find_element(By.ID, "missing").text
        assert f"list modeldeployments.rollguard.dev in namespace {namespace}" in missing
        browser.get(f"{base}decisions/{namespace}/fraud-1")
        assert browser.find_element(By.TAG_NAME, "h1").text == "Not allowed"
        missing = browser.find_element(By.ID, "missing").text
        assert f"get rollbackdecisions.rollguard.dev in namespace {namespace}" in missing
        assert "Traceback" not in browser.page_source
        _screenshot(browser, "no-rights")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}decisions/{namespace}/fraud-1", timeout=10)
        assert refused.value.code == 403
