"""A real-world corpus over the wire (issue 11 item 8).

Every file pydicom ships as test data and every header mutation of :mod:`testkit.corpus` on a
small FLAIR MR study go to one real node process, each file on a presentation context of its
own SOP class and transfer syntax. Each is stored or refused with a failure status whose reason
the node logs; nothing partial stays on disk; the node is alive afterwards. A few mutated series
are routed to ``brain_lesion``: each job succeeds with results that pass ``dciodvfy`` or is
refused with one line an operator understands. ``bench/corpus.py`` runs everything.
"""

from __future__ import annotations

from collections import Counter

import pytest

from testkit.corpus import mutated_cases, pydicom_cases
from testkit.corpusrun import PYTHON_WORDS, CorpusRun, node_config, partial_files, run_corpus
from testkit.nodeproc import NodeProcess

#: The mutated series that run the model (the others are only stored or refused).
ROUTED = (
    "invalid_cs",  # PatientSex "0000": the FLAIR of issue 11, now through serve
    "trailing_nuls",
    "pn_latin1_no_charset",
    "iso2022_charsets",
    "zero_spacing",
    "localizers_mixed_in",  # the localizers are left out, the axial stack analysed
    "jpeg_lossless",  # what most archives store and send: decoded, not refused
    "jpeg_ls_lossless",
    "rle_lossless",
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("corpus")
    files = pydicom_cases(root / "corpus")
    series = list(mutated_cases(root / "corpus", pipelines=["brain_lesion"]))
    files += [item for case in series for item in case.files]
    node = NodeProcess(root / "node", node_config("|".join(ROUTED))).start(timeout=60)
    try:
        run = run_corpus(node, files, expected_jobs=len(ROUTED), timeout=240, settle=3)
        partial = partial_files(node)
    finally:
        node.stop()
    yield run, series, partial, node


def test_every_file_is_stored_or_refused_with_a_logged_reason(corpus):
    run, _, partial, _ = corpus
    run: CorpusRun
    unsent = [(f.name, out.problem) for f, out in run.sent if out.status is None]
    # only what C-STORE cannot carry at all: no SOP class/instance, a DICOMDIR
    # or a transfer syntax the node does not accept (deflate): the association is rejected
    assert {p for _, p in unsent if not p.startswith("association rejected (offered Deflated")} <= {
        "no SOP Class or Instance UID",
        "a DICOMDIR, not a storage object",
    }, unsent
    failed = Counter(f"0x{out.status:04X}" for _, out in run.sent if out.status and not out.stored)
    logged = Counter(status for status, _ in run.refusals)
    assert failed == logged, (failed, logged)
    assert all(reason and reason != "None" for _, reason in run.refusals)
    assert sum(out.stored for _, out in run.sent) > 100  # most of it goes in
    assert partial == []
    assert run.alive


def test_routed_series_yield_valid_results_or_a_readable_refusal(corpus):
    run, series, _, _ = corpus
    routed = {case.study_uid: case.mutation for case in series if case.mutation in ROUTED}
    jobs = {job.study_uid: job for job in run.jobs if job.study_uid in routed}
    assert set(jobs) == set(routed), run.by_mutation(series)
    for uid, job in jobs.items():
        where = f"{routed[uid]}: {job.state}: {job.error}"
        assert job.state in ("succeeded", "refused", "dead"), where
        if job.state == "succeeded":
            assert job.results, where
            assert all(lines == [] for lines in job.dciodvfy_errors.values()), (
                where,
                job.dciodvfy_errors,
            )
        else:
            assert job.error and "\n" not in job.error, where
            assert not PYTHON_WORDS.search(job.error), where
    # the header quirks are repaired and the compressed series decoded, not refused
    quirks = [uid for uid, m in routed.items() if m != "zero_spacing"]
    assert all(jobs[uid].state == "succeeded" for uid in quirks), run.by_mutation(series)
