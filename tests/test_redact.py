"""dicomnode.phi.redact: identifiers of the input study out of error messages, UIDs kept."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomnode.phi import REDACTED, PatientIdentifiers, redact
from testkit import dicomgen

UID = "2.25.19010101471112345"


def _ids(**attrs: object) -> PatientIdentifiers:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return PatientIdentifiers.from_datasets([ds])


def test_every_form_of_name_id_and_birth_date_is_removed() -> None:
    ids = _ids(
        PatientName="Doe^Jane^Q^Dr",
        PatientID="MRN-0042",
        OtherPatientIDs=["ALT-7", "ALT-8"],
        PatientBirthDate="19450307",
        AccessionNumber="ACC991",
    )
    text = (
        "failed for Doe^Jane^Q^Dr (JANE DOE, doe, jane; Doe, Jane Q Dr) id 'mrn-0042' "
        "others ALT-7\\ALT-8 born 19450307 / 1945-03-07 acc ACC991"
    )
    out = redact(text, ids)
    for word in ("doe", "jane", "mrn-0042", "alt-7", "alt-8", "19450307", "1945-03-07", "acc991"):
        assert word not in out.casefold(), out
    assert out.startswith("failed for " + REDACTED)
    assert "born" in out and "others" in out


def test_uids_and_longer_words_are_kept() -> None:
    ids = _ids(PatientID="12345", PatientName="ANN^LEE", PatientBirthDate="19010101")
    text = f"series 1.2.840.12345.6 and {UID}: Annex, Leeds, 123456, id 12345."
    out = redact(text, ids)
    assert "1.2.840.12345.6" in out and UID in out
    assert "Annex, Leeds, 123456" in out
    assert out.endswith(f"id {REDACTED}.")


def test_a_uid_that_is_an_identifier_goes() -> None:
    ids = _ids(PatientID="1.2.3.4")
    assert redact("patient 1.2.3.4 in 1.2.3.45", ids) == f"patient {REDACTED} in 1.2.3.45"


def test_nothing_to_remove_returns_the_text() -> None:
    assert redact("plain text", PatientIdentifiers()) == "plain text"
    assert redact("", _ids(PatientID="X1")) == ""
    assert "X1" not in repr(_ids(PatientID="X1"))


def test_identifiers_from_files(tmp_path) -> None:
    spec = dicomgen.study("redact", [2])[0]
    paths = dicomgen.write_series(spec, tmp_path / "s") + [tmp_path / "missing.dcm"]
    ids = PatientIdentifiers.from_files(paths)
    text = redact(f"{dicomgen.CANARY_NAME} {dicomgen.CANARY_ID} 19010101 {spec.series_uid}", ids)
    assert text == f"{REDACTED} {REDACTED} {REDACTED} {spec.series_uid}"
