"""The operator's web app in a real browser (Debian's chromium + chromium-driver, headless,
driven by selenium; nothing is downloaded at run time) against a real node running the toy
pipeline: log in, search a study by accession, open it, see the summary preview and the
findings table, download the SR, retry a dead job. A screenshot of each page is saved under
the test's temp dir (``screenshots/``); with ``DICOMNODE_SCREENSHOTS=1`` the study page also
goes to ``docs/screenshots/study.png`` (the README's picture)."""

from __future__ import annotations

import base64
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from testkit import dicomgen, seriesgen
from testkit.nodeproc import free_port, storescu, toy_export_config, wait_for
from tests.export.peers import Storescp

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token-0123456789abcdef"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "study.png"


def _write_study(
    root: Path, name: str, *, accession: str, patient: str, description: str, count: int = 6
) -> list[Path]:
    """A CT series with the headers the result encoders need, then this patient's names."""
    (spec,) = dicomgen.study(name, [count], modality="CT")
    paths = seriesgen.write_series(spec, root, description=description, value=40)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.AccessionNumber = patient, f"ID-{name}", accession
        ds.StudyDate = "20261204"
        ds.save_as(path, enforce_file_format=True)
    return paths


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless chromium with downloads going to ``tmp_path/downloads``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never fetch a browser or driver
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(20)
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, tmp_path: Path, name: str) -> Path:
    """The whole page (beyond the window) as PNG, through the DevTools protocol."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    assert path.stat().st_size > 1000
    return path


def test_operator_finds_a_study_sees_its_results_and_retries_a_dead_job(
    node_factory, tmp_path, browser
):
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    pacs = Storescp(tmp_path / "pacs").start()
    try:
        config = toy_export_config(pacs.port, free_port())
        config["destinations"].pop("down")
        config["routes"][0]["send_to"] = ["pacs"]
        config["workers"]["max_attempts"] = 1
        config["stability"] = {"series_seconds": 1, "study_seconds": 2}
        config["http"] = {"token": TOKEN}
        node = node_factory(**config).start()
        good = _write_study(
            tmp_path / "good",
            "ui-good",
            accession="ACC-UI-0001",
            patient="DOE^JANE",
            description="CHEST CT",
        )
        bad = _write_study(
            tmp_path / "bad",
            "ui-bad",
            accession="ACC-UI-0002",
            patient="ROE^RICHARD",
            description="TOY:fail",
        )
        assert storescu(node.port, good + bad).returncode == 0
        wait_for(
            lambda: sorted(node.query("select state from jobs")) == [("dead",), ("succeeded",)],
            "one job succeeded and one dead",
        )
        wait_for(
            lambda: (
                node.query("select count(*) from deliveries where state = 'delivered'")[0][0] >= 2
            ),
            "results delivered",
        )
        dead_job = node.query("select id from jobs where state = 'dead'")[0][0]
        base = f"http://127.0.0.1:{node.http_port}"
        ready = time.monotonic()
        print(f"node, studies and jobs {ready - started:.1f} s")

        # log in: a page asked for without a session goes to the login form
        browser.get(f"{base}/studies")
        assert "/login" in browser.current_url
        _shot(browser, tmp_path, "1-login")
        browser.find_element(By.ID, "operator").send_keys("Dr Test")
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "login").click()
        wait_for(lambda: browser.current_url.startswith(f"{base}/studies"), "the studies page")
        assert "Dr Test" in browser.find_element(By.CLASS_NAME, "who").text

        # search by accession: exactly the one study, with its patient and outcome
        field = browser.find_element(By.ID, "accession")
        field.clear()
        field.send_keys("ACC-UI-0001")
        browser.find_element(By.ID, "find").click()
        wait_for(lambda: "accession=ACC-UI-0001" in browser.current_url, "the search")
        rows = browser.find_elements(By.CSS_SELECTOR, "table.studies tbody tr")
        assert len(rows) == 1
        assert "DOE^JANE" in rows[0].text and "analysed" in rows[0].text
        assert "ROE^RICHARD" not in browser.page_source
        _shot(browser, tmp_path, "2-studies")

        # the study page: summary preview shown, findings table, full UIDs
        rows[0].find_element(By.TAG_NAME, "a").click()
        wait_for(lambda: "/studies/2.25." in browser.current_url, "the study page")
        preview = browser.find_element(By.CSS_SELECTOR, "img.preview")
        wait_for(
            lambda: browser.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth", preview
            ),
            "the summary preview to load",
        )
        findings = browser.find_elements(By.CSS_SELECTOR, "table.findings tbody tr")
        assert findings and "lung_nodule" in findings[0].text
        study_uid = node.query("select study_uid from jobs where state = 'succeeded'")[0][0]
        assert study_uid in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
        decisions = browser.find_element(By.CSS_SELECTOR, "table.series").text
        assert "ct-toy: MATCH; job" in decisions
        study_shot = _shot(browser, tmp_path, "3-study")
        if os.environ.get("DICOMNODE_SCREENSHOTS") == "1":
            DOCS_SHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(study_shot, DOCS_SHOT)

        # download the SR: the browser saves a DICOM SR with the listed UID
        sr = browser.find_element(By.CSS_SELECTOR, "section.result.SR")
        sr_uid = sr.find_element(By.TAG_NAME, "code").text
        sr.find_element(By.CSS_SELECTOR, "a.download").click()
        saved = browser.downloads / f"{sr_uid}.dcm"
        wait_for(saved.is_file, "the SR download", timeout=20)
        ds = pydicom.dcmread(saved)
        assert ds.Modality == "SR" and ds.SOPInstanceUID == sr_uid

        # the queue: retry the dead job, said on the page and done in the database
        browser.get(f"{base}/queue")
        _shot(browser, tmp_path, "4-queue")
        browser.find_element(By.ID, f"retry-{dead_job}").click()
        message = wait_for(lambda: browser.find_elements(By.ID, "message"), "the retry message")
        assert "queued" in message[0].text, message[0].text
        started_sql = (
            "select count(*) from audit_events where kind = 'job.started'"
            f" and detail like 'job {dead_job}:%'"
        )
        wait_for(lambda: node.query(started_sql)[0][0] == 2, "the retried job to run again")
        _shot(browser, tmp_path, "5-queue-retried")

        browser.get(f"{base}/audit?kind=web.")
        _shot(browser, tmp_path, "6-audit")
        audit = node.query("select kind, subject, detail from audit_events where kind like 'web.%'")
        viewed = [row for row in audit if row[0] == "web.identifiers_viewed"]
        assert any(row[1] == study_uid and "Dr Test" in row[2] for row in viewed)
        assert any(row[0] == "web.action" and f"retry job {dead_job}" in row[2] for row in audit)
        for row in audit:  # the audit trail names the operator, never the patient
            assert "DOE" not in (row[2] or "") and "ACC-UI" not in (row[2] or "")
        assert "DOE^JANE" not in node.log_text() and "ACC-UI-0001" not in node.log_text()
        print(
            f"browser part {time.monotonic() - ready:.1f} s, all {time.monotonic() - started:.1f} s"
        )
    finally:
        pacs.stop()
