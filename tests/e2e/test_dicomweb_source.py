"""QIDO-RS and WADO-RS against Orthanc's DICOMweb plugin (dicomnode.net.dicomweb): the study
and series a priors search finds, a series streamed into the store as priors, and
``priors.max_bytes`` stopping a response mid-way with nothing stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from sqlalchemy import create_engine, select

from dicomnode.config.schema import DicomwebSource
from dicomnode.demo.orthanc import DICOMWEB_PLUGIN, Orthanc
from dicomnode.demo.processes import free_port
from dicomnode.errors import QueryFailed
from dicomnode.net.dicomweb import DicomwebSearch, probe
from dicomnode.net.receive import Receiver
from dicomnode.store.db import Database
from dicomnode.store.ingest import Store
from dicomnode.store.models import Instance, Series
from testkit import dicomgen
from testkit.orthanc import discard
from testkit.seriesgen import write_series

pytestmark = pytest.mark.skipif(
    not DICOMWEB_PLUGIN.is_file(), reason=f"Orthanc's DICOMweb plugin is missing: {DICOMWEB_PLUGIN}"
)


@pytest.fixture
def pacs(tmp_path: Path) -> Iterator[Orthanc]:
    orthanc = Orthanc(tmp_path / "orthanc", dicomweb=True).start()
    try:
        yield orthanc
    finally:
        discard(orthanc)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    db = Database(create_engine(f"sqlite:///{tmp_path / 'state.db'}"))
    db.upgrade()
    return Store(tmp_path / "store", db, min_free=0)


def _prior(root: Path) -> tuple[str, str, list[Path]]:
    """A 4-instance CT series of patient P-17 on 2024-01-05: study, series UIDs and files."""
    (spec,) = dicomgen.study("web-prior", [4])
    spec = replace(spec, modality="CT", rows=32, columns=32)
    files = write_series(spec, root)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.StudyDate, ds.BodyPartExamined = "P-17", "20240105", "CHEST"
        ds.save_as(path, enforce_file_format=True)
    return spec.study_uid, spec.series_uid, files


def _stored(store: Store) -> list[tuple[str, str]]:
    with store.db.session() as session:
        rows = session.execute(
            select(Series.series_uid, Series.origin).join(Instance, Instance.series_id == Series.id)
        ).all()
    return [(uid, getattr(origin, "value", origin)) for uid, origin in rows]


def test_qido_finds_and_wado_retrieves_a_prior_within_max_bytes(pacs, store, tmp_path):
    study_uid, series_uid, files = _prior(tmp_path / "files")
    pacs.upload(files)
    web = DicomwebSearch(DicomwebSource(url=pacs.dicomweb_url))

    (study,) = web.find_studies("P-17", issuer=None, dates="20230101-20250110", timeout=10)
    assert (study.study_uid, study.study_date) == (study_uid, "20240105")
    assert web.find_studies("P-17", issuer=None, dates="20180101-20231231", timeout=10) == []
    assert web.find_studies("P-99", issuer=None, dates="", timeout=10) == []
    with pytest.raises(QueryFailed, match="wildcard"):
        web.find_studies("P-*", issuer=None, dates="", timeout=10)
    (series,) = web.find_series(
        study_uid,
        keys=["BodyPartExamined", "NumberOfSeriesRelatedInstances"],
        modality="CT",
        timeout=10,
    )
    assert str(series.SeriesInstanceUID) == series_uid
    assert str(series.BodyPartExamined) == "CHEST"
    assert int(series.NumberOfSeriesRelatedInstances) == 4
    assert web.find_series(study_uid, keys=[], modality="MR", timeout=10) == []

    receiver = Receiver(store)
    size = sum(path.stat().st_size for path in files)
    # a budget below the series: the response is cut off, nothing of it is stored or left
    with pytest.raises(QueryFailed, match="max_bytes"):
        web.retrieve_series(
            study_uid, series_uid, receiver=receiver, max_bytes=size // 2, timeout=10
        )
    assert _stored(store) == []
    assert list(store.incoming.iterdir()) == []

    fetched = web.retrieve_series(
        study_uid, series_uid, receiver=receiver, max_bytes=10 * size, timeout=10
    )
    assert (fetched.stored, fetched.failed) == (4, 0)
    assert size // 2 < fetched.bytes < 10 * size
    assert _stored(store) == [(series_uid, "prior")] * 4
    assert list(store.incoming.iterdir()) == []
    # stored byte for byte as the source holds them (the data sets, past the preamble)
    with store.db.session() as session:
        paths = session.scalars(select(Instance.path)).all()
    sent = {pydicom.dcmread(p).SOPInstanceUID: pydicom.dcmread(p) for p in files}
    for path in paths:
        ds = pydicom.dcmread(store.root / path)
        assert ds.PixelData == sent[ds.SOPInstanceUID].PixelData


def test_probe_answers_and_a_closed_port_does_not(pacs):
    assert probe(DicomwebSource(url=pacs.dicomweb_url), timeout=5) is None
    closed = DicomwebSource(url=f"http://127.0.0.1:{free_port()}/dicom-web")
    assert (probe(closed, timeout=5) or "").startswith("no answer (")
    missing = DicomwebSource(url=f"http://127.0.0.1:{pacs.http_port}/no-such-service")
    assert probe(missing, timeout=5) == "HTTP 404"


def test_check_probes_dicomweb_sources(node_factory, pacs, tmp_path):
    node = node_factory(
        sources={
            "web": {"url": pacs.dicomweb_url},
            "gone": {"url": f"http://127.0.0.1:{free_port()}/dicom-web"},
            "noca": {"url": pacs.dicomweb_url, "ca": str(tmp_path / "no-such-ca.pem")},
        },
    )
    out = node.cli("check")
    lines = out.stdout.splitlines()
    (up,) = [line for line in lines if "source web" in line]
    (down,) = [line for line in lines if "source gone" in line]
    (noca,) = [line for line in lines if "source noca" in line]
    assert up.startswith("ok") and up.endswith("/dicom-web answers QIDO-RS")
    assert down.startswith("WARN") and "no answer" in down
    assert noca.startswith("FAIL") and "no-such-ca.pem: no such file" in noca
    assert out.returncode != 0  # the missing CA file is a config error; the WARN is not
