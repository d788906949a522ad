"""The dashboard notebook driven in a real browser: JupyterLab in headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make test``; see the Makefile's ``browser`` target).

An analyst's session: open the notebook, run every cell, click an alert in the queue and see the drill-down
charts redraw for it, open a case on it, comment, move it to investigating, close it as reported; then the
store on disk — not the page — must hold the case, its status and the audit trail of those clicks.
Screenshots of each step go to a temporary folder, or to ``$MS_SCREENSHOT_DIR``: the ones docs/dashboard.md and
docs/store.md show were taken with ``MS_SCREENSHOT_DIR=docs/img .venv/bin/python -m pytest
tests/test_dashboard_browser.py`` (a test run must not rewrite tracked files).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "surveillance_dashboard.ipynb"
CHROMEDRIVER = Path(os.environ.get("MS_CHROMEDRIVER", "/usr/bin/chromedriver"))
CHROMIUM = Path(os.environ.get("MS_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("MS_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "ms-browser-test"))
LONG = 240  # seconds: a notebook run on a loaded 2-core machine

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(900)]

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra: run `make setup`")
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def lab(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """JupyterLab on a free port, serving a copy of the notebook next to a copy of the demo run (the test
    writes cases into its store; the shared demo run stays untouched). Yields (url, data dir)."""
    if not CHROMEDRIVER.exists() or not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMEDRIVER} or {CHROMIUM} missing: `make test` installs Debian's chromium + chromium-driver "
            "(as root), else run `sudo apt-get install chromium chromium-driver`"
        )
    base = tmp_path_factory.mktemp("browser")
    data = base / "data"
    shutil.copytree(demo_dir, data)
    (base / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, base / "notebooks" / NOTEBOOK.name)
    port = _free_port()
    env = {
        **os.environ,
        "MS_DATA_DIR": str(data),
        "MS_DB_URL": f"sqlite:///{data / 'alerts.sqlite'}",
        "MS_ACTOR": "browser-analyst",
        # keep Jupyter's settings, workspaces and runtime files out of the user's home
        "JUPYTER_CONFIG_DIR": str(base / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(base / "jupyter-runtime"),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "jupyter-workspaces"),
    }
    env.pop("MS_ALERT_ID", None)
    # no news/update toasts over the page (and no request to the outside)
    settings = base / "jupyter-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false, "doNotDisturbMode": true}'
    )
    env["JUPYTERLAB_SETTINGS_DIR"] = str(base / "jupyter-settings")
    log = open(base / "jupyter.log", "w")  # noqa: SIM115 -- closed after the server stops
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={base}",
            # window.jupyterapp: run cells through Lab's own commands instead of hunting menu items
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=base,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + LONG
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("JupyterLab did not start:\n" + (base / "jupyter.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, data
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1500,1100", "--hide-scrollbars"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(
        options=opts, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver: webdriver.Chrome, what: str, cond, timeout: float = LONG):  # type: ignore[no-untyped-def]
    """Wait for ``cond(driver)`` to be truthy, ignoring transient DOM/JS errors; fail naming ``what``."""
    try:
        return WebDriverWait(
            driver,
            timeout,
            poll_frequency=0.5,
            ignored_exceptions=(JavascriptException, StaleElementReferenceException),
        ).until(cond)
    except Exception as exc:
        SHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SHOTS.parent / "browser-test-failure.png"))
        raise AssertionError(f"timed out waiting for {what}") from exc


def _one(driver: webdriver.Chrome, css: str):  # type: ignore[no-untyped-def]
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0] if found else None


def _kernel_idle(driver: webdriver.Chrome) -> bool:
    return bool(
        driver.execute_script(
            "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            "return !!k && k.status === 'idle' && w.sessionContext.isReady;"
        )
    )


def _drill_title(driver: webdriver.Chrome) -> str:
    el = _one(driver, ".ms-drill .gtitle")
    return el.text if el is not None else ""


def _message(driver: webdriver.Chrome) -> str:
    el = _one(driver, ".ms-message")
    return el.text if el is not None else ""


def _click(driver: webdriver.Chrome, css: str) -> None:
    el = _wait(driver, css, lambda d: _one(d, css))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()


def _type(driver: webdriver.Chrome, css: str, text: str) -> None:
    el = _wait(driver, css, lambda d: _one(d, css))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.clear()
    el.send_keys(text)
    # leave the box: the widget sends its value on blur; wait until the kernel has processed it
    driver.execute_script("arguments[0].blur();", el)
    time.sleep(1.0)
    _wait(driver, "the kernel to take the text", _kernel_idle)


def _act(driver: webdriver.Chrome, button: str, expect: str) -> None:
    """Click a widget button and wait for the store's answer in the message line."""
    before = _message(driver)
    _click(driver, button)
    msg = _wait(driver, f"the answer to {button}", lambda d: (m := _message(d)) != before and m)
    assert expect in msg and "refused" not in msg, msg


def _shot(driver: webdriver.Chrome, name: str, css: str | None = None, *, element: bool = True) -> None:
    """Save a screenshot: of the element ``css`` (or, with ``element=False``, of the window scrolled to it)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if css is not None:
        el = _one(driver, css)
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", el)
        time.sleep(1.0)  # let plotly finish its resize after the scroll
        if element:
            el.screenshot(str(SHOTS / name))
            return
    driver.save_screenshot(str(SHOTS / name))


def test_dashboard_browser_run_select_open_comment_close_lands_in_store(lab, browser):
    url, data = lab
    d = browser
    d.get(f"{url}/lab/tree/notebooks/{NOTEBOOK.name}")
    _wait(d, "the notebook and its kernel", _kernel_idle)
    # not awaited: the promise settles only when every cell has run (longer than a script timeout)
    d.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")
    # every cell ran: the last one displays the triage widget, with the top alert already drilled down
    _wait(d, "the triage widget", lambda d: _one(d, ".ms-triage .ms-queue select"))
    _wait(d, "all cells to finish", _kernel_idle)
    errors = d.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
    )
    tracebacks = [e.text for e in errors if "Traceback" in e.text or "Error" in e.text]
    assert tracebacks == [], tracebacks
    # static charts of the notebook rendered by plotly.js (counts x3, drill-down, replay, ML)
    _wait(
        d,
        "the notebook's charts",
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .js-plotly-plot")) >= 6,
    )
    first = _wait(d, "the drill-down of the top alert", lambda d: _drill_title(d))
    _shot(d, "dashboard-notebook.png")

    # click another alert of another rule: the drill-down charts redraw for it
    queue = Select(_one(d, ".ms-queue select"))
    options = [o.text for o in queue.options]
    assert len(options) >= 2, options
    rule_of_first = options[0].split()[2]
    pick = next(i for i, o in enumerate(options) if o.split()[2] != rule_of_first)
    picked_prefix = options[pick].split()[1]  # the label shows the alert id's first 10 characters
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", _one(d, ".ms-queue select"))
    queue.deselect_all()
    queue.select_by_index(pick)
    second = _wait(d, "the drill-down to redraw", lambda d: (t := _drill_title(d)) != first and t)
    assert options[pick].split()[2] in second, (options[pick], second)
    _wait(d, "the book replay", lambda d: _one(d, ".ms-replay .js-plotly-plot"))
    _wait(d, "the evidence tables", lambda d: "evidence trades" in (_one(d, ".ms-evidence").text or ""))
    _shot(d, "dashboard-queue.png", ".ms-triage", element=False)
    _shot(d, "dashboard-drilldown.png", ".ms-drill")
    _shot(d, "dashboard-evidence.png", ".ms-evidence")
    _shot(d, "dashboard-replay.png", ".ms-replay")
    _shot(d, "dashboard-accounts.png", ".ms-accounts")

    # open a case on it, comment, investigate, close as reported: each through the store
    _type(d, ".ms-title input", "browser test: suspicious pattern")
    _act(d, ".ms-open", "open case")
    _type(d, ".ms-comment textarea", "checked the book replay: orders pulled before execution")
    _act(d, ".ms-comment-button", "comment")
    Select(_one(d, ".ms-status select")).select_by_value("investigating")
    _act(d, ".ms-set-status", "status")
    Select(_one(d, ".ms-resolution select")).select_by_value("reported")
    _type(d, ".ms-comment textarea", "STOR filed with the regulator")
    _act(d, ".ms-close", "close as reported")
    _wait(
        d,
        "the case panel to show the closed case",
        lambda d: "closed_reported" in _one(d, ".ms-case-view").text,
    )
    # the status control follows the store, not the last value picked
    assert Select(_one(d, ".ms-status select")).first_selected_option.text == "closed_reported"
    _shot(d, "dashboard-case.png", ".ms-case-view")

    # the store on disk holds the case and the audit trail of those clicks
    from market_surveillance.store import Store

    store = Store.open(f"sqlite:///{data / 'alerts.sqlite'}")
    try:
        cases = store.cases()
        assert len(cases) == 1
        case = cases[0]
        assert case.status == "closed_reported"
        assert len(case.alert_ids) == 1 and case.alert_ids[0].startswith(picked_prefix)
        assert case.title == "browser test: suspicious pattern"
        history = store.history(case.case_id)
        actions = [e.action for e in history]
        assert actions[0] == "open" and actions[-1] == "close", actions
        assert "comment" in actions and "status" in actions
        assert {e.actor for e in history} == {"browser-analyst"}
        assert any(e.comment == "checked the book replay: orders pulled before execution" for e in history)
        assert history[-1].comment == "STOR filed with the regulator"
        assert history[-1].new == "closed_reported"
    finally:
        store.dispose()


def _rendered_charts(driver: webdriver.Chrome, page: Path) -> tuple[int, int]:
    """Open a saved page with the network off; (plotly divs in the page, charts plotly.js drew in them)."""
    driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
    try:
        driver.get(page.as_uri())
        n = len(driver.find_elements(By.CSS_SELECTOR, ".plotly-graph-div"))
        _wait(
            driver,
            f"plotly.js to draw the charts of {page.name} offline",
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, ".plotly-graph-div.js-plotly-plot .main-svg")) >= n
            ),
            timeout=120,
        )
        drawn = len(driver.find_elements(By.CSS_SELECTOR, ".plotly-graph-div.js-plotly-plot"))
    finally:
        driver.delete_network_conditions()
    return n, drawn


def test_dashboard_browser_exported_pages_draw_every_chart_offline(lab, browser, tmp_path):
    """The nbconvert export of the notebook and `alerts report` pages, opened with the network off: every
    chart is drawn (plotly.js is in the page, nothing is fetched)."""
    _, data = lab
    env = {**os.environ, "MS_DATA_DIR": str(data), "MS_DB_URL": f"sqlite:///{data / 'alerts.sqlite'}"}
    nb = tmp_path / NOTEBOOK.name
    shutil.copy(NOTEBOOK, nb)
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute", str(nb)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        timeout=LONG * 2,
    )
    n, drawn = _rendered_charts(browser, nb.with_suffix(".html"))
    assert n >= 6 and drawn == n, (n, drawn)

    from market_surveillance.store import Store

    store = Store.open(env["MS_DB_URL"])
    try:
        alert_id = store.alerts(rule="spoofing").to_pylist()[0]["alert_id"]
    finally:
        store.dispose()
    from market_surveillance.dashboard.report import write_alert_report

    page = write_alert_report(alert_id, tmp_path / "alert.html", data, env["MS_DB_URL"])
    n, drawn = _rendered_charts(browser, page)
    assert n >= 2 and drawn == n, (n, drawn)
