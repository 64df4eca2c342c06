"""What libraries print is logged as JSON and without identifiers (issue 11 item 4).

A series whose header makes pydicom and highdicom warn, quoting values that hold canary
names, goes through a real node (store, route, job in the inference child, results) and
through ``dicomnode run``: no canary in the node's log or the command's output, every log
line is JSON, and highdicom's "copy attributes of module" chatter stays below INFO.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pydicom
import pytest
import yaml
from pydicom.dataelem import DataElement

from dicomnode.config.schema import LoggingConfig
from dicomnode.logs import job_identifiers, scrub_quoted, setup_logging
from testkit import dicomgen
from testkit.nodeproc import TOY_PIPELINE, storescu, toy_export_config
from testkit.seriesgen import write_series

PATIENT = "ZQXSOLO"  # a one-component name: highdicom warns, quoting it
PATIENT_ID = "ZQX-PID-31337"
PHYSICIAN = "ZQXDOCTOR"  # not a patient identifier: only the generic scrub catches it
DESCRIPTION = "ZQXSTUDY " * 8  # an over-long LO (72 > 64 characters)
CANARIES = ("ZQXSOLO", "ZQX-PID-31337", "ZQXDOCTOR", "ZQXSTUDY")


def _quirky_series(directory: Path, study: str) -> list[Path]:
    (spec,) = dicomgen.study(study, [4])
    paths = write_series(spec, directory, description="library warnings", value=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            ds = pydicom.dcmread(path)
            ds.add(DataElement(0x00100010, "PN", PATIENT))
            ds.add(DataElement(0x00100020, "LO", PATIENT_ID))
            ds.add(DataElement(0x00100040, "CS", "0000"))  # PatientSex: not M/F/O
            ds.add(DataElement(0x00081030, "LO", DESCRIPTION))
            ds.add(DataElement(0x00080090, "PN", PHYSICIAN))
            ds.save_as(path, enforce_file_format=True)
    return paths


def _leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c.casefold() in text.casefold()]


def _not_json(text: str) -> list[str]:
    bad = []
    for line in text.splitlines():
        try:
            assert isinstance(json.loads(line), dict)
        except (ValueError, AssertionError):
            bad.append(line)
    return bad


def test_scrub_quoted_keeps_uids_and_empty_values():
    text = "Invalid value for VR CS: 'zqx'. \"O'BRIEN\" '1.2.840.10008' '' b'\\x00zqx'"
    assert scrub_quoted(text) == (
        "Invalid value for VR CS: '[redacted]'. \"[redacted]\" '1.2.840.10008' '' b'[redacted]'"
    )


def test_warnings_and_library_records_are_redacted_json(tmp_path, capsys):
    paths = _quirky_series(tmp_path / "s", "liblogs-unit")
    stream = (tmp_path / "log").open("w")
    root = logging.getLogger()
    saved = root.handlers[:], root.level, warnings.showwarning
    try:
        setup_logging(LoggingConfig(level="INFO"), stream)
        with job_identifiers(paths):
            # The job's identifiers, even unquoted, even in the node's own records.
            logging.getLogger("pydicom").warning("name %s id %s", PATIENT, PATIENT_ID)
            logging.getLogger("dicomnode.test").warning("patient %s", PATIENT.lower())
        warnings.warn(f"The string {PHYSICIAN!r} is odd", UserWarning, stacklevel=1)
        logging.getLogger("highdicom.base").info('copy attributes of module "Patient"')
        try:
            raise ValueError(f"Invalid value for VR PN: {PHYSICIAN!r}")
        except ValueError:
            logging.getLogger("highdicom").warning("failed", exc_info=True)
    finally:
        stream.close()
        root.handlers[:], warnings.showwarning = saved[0], saved[2]
        root.setLevel(saved[1])
    text = (tmp_path / "log").read_text()
    assert _leaks(text) == [] and _not_json(text) == []
    assert "copy attributes" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["logger"] for r in records] == [
        "pydicom",
        "dicomnode.test",
        "py.warnings",
        "highdicom",
    ]
    assert "UserWarning: The string '[redacted]' is odd" in records[2]["message"]
    assert "ValueError: Invalid value for VR PN: '[redacted]'" in records[3]["exception"]


def _wait_job(node, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [s for (s,) in node.query("select state from jobs")]
        if states and states[0] in ("succeeded", "dead", "refused"):
            return states[0]
        time.sleep(0.3)
    pytest.fail(f"no job finished: {node.query('select id, state, error from jobs')}")


def test_node_logs_library_warnings_as_json_without_canaries(node_factory, tmp_path):
    config = toy_export_config(0, 0)
    config.pop("destinations")
    config["routes"][0].update(send_to=[], shadow=True)  # results kept, not sent
    node = node_factory(**config).start()
    files = _quirky_series(tmp_path / "series", "liblogs-node")
    out = storescu(node.port, files)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _wait_job(node) == "succeeded"
    node.stop()
    log = node.log_text()
    assert "encoded" in log  # results were made (in the child, whose lines are here too)
    assert '"process": "dicomnode-inference"' in log
    assert "py.warnings" in log  # the libraries did warn...
    assert _leaks(log) == []  # ...without the canaries
    assert _not_json(log) == []
    assert "copy attributes of module" not in log


def test_dicomnode_run_prints_no_canary(tmp_path):
    _quirky_series(tmp_path / "series", "liblogs-run")
    config = tmp_path / "dicomnode.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "pipelines": {"toy": {"class": TOY_PIPELINE, "threshold": 1}},
            }
        )
    )
    out = subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", "run", "toy", str(tmp_path / "series"),
         "--out", str(tmp_path / "out"), "-c", str(config)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "py.warnings" in out.stderr  # highdicom and pydicom did warn
    assert _leaks(out.stdout + out.stderr) == []
    assert _not_json(out.stderr) == []
    assert len(list((tmp_path / "out").glob("*.dcm"))) >= 2
