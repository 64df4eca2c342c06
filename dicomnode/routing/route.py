"""Compiled routes and matching: :class:`Route`, :class:`Match`, :class:`StudyMatch`.

Series-level routes are matched one series at a time with :meth:`Route.match`. Study-level
routes are matched once a study is stable, with :meth:`Route.match_study` on all its series:
``when`` filters the series that take part; without named inputs every such series goes into
the job, with named inputs each input selects exactly one series.

Ambiguity rule: when several series satisfy an input, the one with the highest SeriesNumber
is taken (a repeated acquisition gets a later number, and the repeat is the one kept), then
the one with most instances, then the highest SeriesInstanceUID, so the choice is
deterministic. Two inputs may not select the same series: the study does not match, and the
reason names both inputs (make their conditions exclusive, e.g. with ``not:``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydicom.tag import BaseTag

from dicomnode.routing.conditions import Condition
from dicomnode.routing.facts import SeriesFacts, observe
from dicomnode.routing.schema import Level, Output, Priority

__all__ = ["Clause", "Failure", "Match", "NamedInput", "Route", "StudyMatch", "short_uid"]


#: Attributes whose values identify the patient: a failure on one of them shows neither the
#: expected nor the actual value, so that ``route explain`` and logs never print them.
IDENTIFYING_KEYS = frozenset(
    {
        "PatientName",
        "PatientID",
        "OtherPatientIDs",
        "OtherPatientNames",
        "IssuerOfPatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientBirthName",
        "PatientMotherBirthName",
        "PatientAddress",
        "PatientTelephoneNumbers",
        "MedicalRecordLocator",
        "AccessionNumber",
    }
)
_HIDDEN = "<hidden>"


def short_uid(uid: str) -> str:
    """A UID shortened for tables: ``…`` and its last 8 characters."""
    return uid if len(uid) <= 12 else f"…{uid[-8:]}"


def _series_label(facts: SeriesFacts) -> str:
    parts = [short_uid(facts.series_uid), facts.modality, f"'{facts.description}'"]
    return " ".join(part for part in parts if part)


@dataclass(frozen=True)
class Failure:
    """The first condition that did not hold.

    Parameters
    ----------
    key : str
        Condition key (``SliceThickness``, ``instances``, ...).
    expected : str
        The expectation in words (``<= 3.0``, ``'CT'``, ``one of 'CHEST', 'LUNG'``).
    actual : str, optional
        The actual value as rendered (``5.0``, ``'MR'``); None when the attribute is absent.
    """

    key: str
    expected: str
    actual: str | None

    def __str__(self) -> str:
        if self.actual is None:
            return f"{self.key}: absent (expected {self.expected})"
        return f"{self.key}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True)
class Match:
    """Outcome of matching one series: ``matched``, else the first ``failure``."""

    matched: bool
    failure: Failure | None = None

    @property
    def reason(self) -> str | None:
        """The failure in words, or None when matched."""
        return None if self.failure is None else str(self.failure)


@dataclass(frozen=True)
class Clause:
    """One condition bound to its key (and, for a DICOM keyword, the resolved tag)."""

    key: str
    condition: Condition
    tag: BaseTag | None = None

    def check(self, facts: SeriesFacts) -> Failure | None:
        """None when the condition holds for ``facts``, else the failure."""
        observed = observe(facts, self.key, self.tag)
        if self.condition.test(observed):
            return None
        actual = None if observed.absent else observed.render()
        if self.key in IDENTIFYING_KEYS:
            return Failure(self.key, _HIDDEN, None if actual is None else _HIDDEN)
        return Failure(self.key, self.condition.describe(), actual)


def _check_all(clauses: Sequence[Clause], facts: SeriesFacts) -> tuple[int, Failure | None]:
    """How many clauses held before the first failure, and that failure (None: all held)."""
    for index, clause in enumerate(clauses):
        failure = clause.check(facts)
        if failure is not None:
            return index, failure
    return len(clauses), None


@dataclass(frozen=True)
class NamedInput:
    """A named input of a study-level route and the clauses that select its series."""

    name: str
    clauses: tuple[Clause, ...]


@dataclass(frozen=True)
class StudyMatch:
    """Outcome of matching a study-level route on all series of one study.

    Parameters
    ----------
    matched : bool
        The study goes to the route's pipeline.
    study_uid : str, optional
        StudyInstanceUID (None when no series was given).
    series : tuple of SeriesFacts
        The series of the job: the chosen series of the named inputs, in input order, or every
        series satisfying ``when`` for a route without inputs. Empty when not matched.
    inputs : Mapping[str, SeriesFacts]
        Input name → chosen series (named inputs only).
    candidates : Mapping[str, tuple of str]
        Input name → UIDs of every series that satisfied it (more than one: the ambiguity rule
        chose).
    missing_input : str, optional
        The first named input no series satisfied.
    failure : Failure, optional
        For the closest miss (the series that satisfied most conditions): its first failure.
    reason : str, optional
        Why the study does not match, in words; None when matched.
    """

    matched: bool
    study_uid: str | None
    series: tuple[SeriesFacts, ...] = ()
    inputs: Mapping[str, SeriesFacts] = field(default_factory=dict)
    candidates: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    missing_input: str | None = None
    failure: Failure | None = None
    reason: str | None = None


def _preference(facts: SeriesFacts) -> tuple[int, int, str]:
    """Sort key of the ambiguity rule: highest SeriesNumber, most instances, highest UID."""
    number = facts.series_number
    return (number if number is not None else -1, facts.instances, facts.series_uid)


def _closest_miss(
    clauses: Sequence[Clause], series: Sequence[SeriesFacts]
) -> tuple[SeriesFacts, Failure] | None:
    best: tuple[int, SeriesFacts, Failure] | None = None
    for facts in series:
        held, failure = _check_all(clauses, facts)
        if failure is not None and (best is None or held >= best[0]):
            best = (held, facts, failure)
    return None if best is None else (best[1], best[2])


@dataclass(frozen=True)
class Route:
    """A compiled route (built by :func:`dicomnode.routing.compile_routes`).

    Parameters
    ----------
    name, pipeline, level, send_to, outputs, shadow, priority
        As in :class:`dicomnode.routing.RouteSpec`; ``outputs`` None means the pipeline's
        defaults.
    when : tuple of Clause
        The conditions, in config order; the first failing one is reported.
    inputs : tuple of NamedInput
        Named inputs of a study-level route, in config order.
    """

    name: str
    pipeline: str
    level: Level
    when: tuple[Clause, ...]
    send_to: tuple[str, ...]
    inputs: tuple[NamedInput, ...] = ()
    outputs: tuple[Output, ...] | None = None
    shadow: bool = False
    priority: Priority = Priority.ROUTINE

    def match(self, facts: SeriesFacts) -> Match:
        """Test ``when`` on one series (for a study-level route: whether the series takes part).

        Parameters
        ----------
        facts : SeriesFacts
            The series.

        Returns
        -------
        Match
            ``matched``, or the first condition that failed with the actual value.
        """
        _, failure = _check_all(self.when, facts)
        return Match(failure is None, failure)

    def match_study(self, series: Sequence[SeriesFacts]) -> StudyMatch:
        """Match a study-level route on all series of one study.

        Parameters
        ----------
        series : sequence of SeriesFacts
            Every series of the study, in any order.

        Returns
        -------
        StudyMatch
            The selected series, or why the study does not match.

        Raises
        ------
        ValueError
            The route is series-level, or the series belong to different studies.
        """
        if self.level is not Level.STUDY:
            raise ValueError(f"route {self.name!r} is series-level: use Route.match per series")
        studies = {facts.study_uid for facts in series}
        if len(studies) > 1:
            raise ValueError(f"series of {len(studies)} studies given; pass one study's series")
        study_uid = next(iter(studies), None)
        ordered = sorted(series, key=_preference)
        if not ordered:
            return StudyMatch(False, study_uid, reason="the study has no series")
        if not self.inputs:
            return self._match_all(study_uid, ordered)
        return self._match_inputs(study_uid, ordered)

    def _match_all(self, study_uid: str | None, ordered: list[SeriesFacts]) -> StudyMatch:
        taking_part = tuple(facts for facts in ordered if self.match(facts).matched)
        if taking_part:
            return StudyMatch(True, study_uid, series=taking_part)
        return self._no_series(study_uid, "when", self.when, ordered)

    def _match_inputs(self, study_uid: str | None, ordered: list[SeriesFacts]) -> StudyMatch:
        chosen: dict[str, SeriesFacts] = {}
        candidates: dict[str, tuple[str, ...]] = {}
        for named in self.inputs:
            # the input's own conditions first: a near miss that is the right kind of series
            # but fails the shared `when` (wrong modality, say) is the one worth reporting
            clauses = (*named.clauses, *self.when)
            fitting = [facts for facts in ordered if _check_all(clauses, facts)[1] is None]
            if not fitting:
                return self._no_series(study_uid, f"input {named.name!r}", clauses, ordered, named)
            candidates[named.name] = tuple(facts.series_uid for facts in fitting)
            chosen[named.name] = fitting[-1]  # ordered by preference, best last
        taken: dict[str, str] = {}
        for name, facts in chosen.items():
            if facts.series_uid in taken:
                first = taken[facts.series_uid]
                return StudyMatch(
                    False,
                    study_uid,
                    candidates=candidates,
                    reason=(
                        f"inputs {first!r} and {name!r} both select {_series_label(facts)}; "
                        "make their conditions exclusive (e.g. with not:)"
                    ),
                )
            taken[facts.series_uid] = name
        return StudyMatch(
            True, study_uid, series=tuple(chosen.values()), inputs=chosen, candidates=candidates
        )

    def _no_series(
        self,
        study_uid: str | None,
        what: str,
        clauses: Sequence[Clause],
        ordered: list[SeriesFacts],
        named: NamedInput | None = None,
    ) -> StudyMatch:
        closest = _closest_miss(clauses, ordered)
        reason = f"{what}: none of {len(ordered)} series matches"
        failure = None
        if closest is not None:
            facts, failure = closest
            reason += f" (closest {_series_label(facts)}: {failure})"
        return StudyMatch(
            False,
            study_uid,
            missing_input=named.name if named else None,
            failure=failure,
            reason=reason,
        )
