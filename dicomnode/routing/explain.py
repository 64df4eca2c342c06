"""``dicomnode route explain``: which routes match the series under a path, and why.

Every series-level route is evaluated on every series, every study-level route on every
study. A row says ``MATCH`` or ``no:`` with the first failed condition and the actual value.
Only UIDs, Modality, SeriesDescription and instance counts appear in the output: never
patient identifiers. Works offline on files; nothing is sent or stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from dicomnode.routing.facts import SeriesFacts
from dicomnode.routing.route import Route, short_uid
from dicomnode.routing.scan import scan
from dicomnode.routing.schema import Level
from dicomnode.terminal import printable

__all__ = ["ExplainRow", "evaluate", "explain", "render_json", "render_table"]


@dataclass(frozen=True)
class ExplainRow:
    """One route evaluated on one series (series-level) or one study (study-level).

    Parameters
    ----------
    route : str
        Route name.
    pipeline : str
        The route's pipeline.
    level : Level
        The route's level; a study-level row is about the whole study.
    study_uid : str
        StudyInstanceUID.
    series_uid : str, optional
        SeriesInstanceUID; None for a study-level row.
    modality, series_description : str
        Of the series ('' when absent, and for a study-level row).
    instances : int
        Instances of the series (of all series of the study, for a study-level row).
    series_count : int
        1, or the number of series of the study for a study-level row.
    matched : bool
        The route matches.
    reason : str, optional
        Why not: the first failed condition with the actual value; None when matched.
    inputs : Mapping[str, str]
        Study-level routes with named inputs: input name → chosen SeriesInstanceUID.
    selected : tuple of str
        SeriesInstanceUIDs the job would get (empty when not matched).
    shadow : bool
        The route runs without sending.
    """

    route: str
    pipeline: str
    level: Level
    study_uid: str
    series_uid: str | None
    modality: str
    series_description: str
    instances: int
    series_count: int
    matched: bool
    reason: str | None
    inputs: Mapping[str, str] = field(default_factory=dict)
    selected: tuple[str, ...] = ()
    shadow: bool = False

    @property
    def subject(self) -> str:
        """The series (short UID, Modality, description) or the study, for the table."""
        if self.series_uid is None:
            return f"study {short_uid(self.study_uid)} ({self.series_count} series)"
        parts = [short_uid(self.series_uid), self.modality, self.series_description]
        return " ".join(part for part in parts if part)

    @property
    def result(self) -> str:
        """``MATCH`` (with the chosen inputs) or ``no: <reason>``."""
        if not self.matched:
            return f"no: {self.reason}"
        notes = [f"{name}={short_uid(uid)}" for name, uid in self.inputs.items()]
        if self.level is Level.STUDY and not self.inputs:
            notes.append(f"{len(self.selected)} series")
        if self.shadow:
            notes.append("shadow")
        return "MATCH" + (f" ({', '.join(notes)})" if notes else "")

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready data."""
        return {
            "route": self.route,
            "pipeline": self.pipeline,
            "level": self.level.value,
            "study_uid": self.study_uid,
            "series_uid": self.series_uid,
            "modality": self.modality,
            "series_description": self.series_description,
            "instances": self.instances,
            "series_count": self.series_count,
            "matched": self.matched,
            "reason": self.reason,
            "inputs": dict(self.inputs),
            "selected": list(self.selected),
            "shadow": self.shadow,
        }


def _series_row(route: Route, facts: SeriesFacts) -> ExplainRow:
    match = route.match(facts)
    return ExplainRow(
        route=route.name,
        pipeline=route.pipeline,
        level=route.level,
        study_uid=facts.study_uid,
        series_uid=facts.series_uid,
        modality=facts.modality,
        series_description=facts.description,
        instances=facts.instances,
        series_count=1,
        matched=match.matched,
        reason=match.reason,
        selected=(facts.series_uid,) if match.matched else (),
        shadow=route.shadow,
    )


def _study_row(route: Route, study_uid: str, series: list[SeriesFacts]) -> ExplainRow:
    match = route.match_study(series)
    return ExplainRow(
        route=route.name,
        pipeline=route.pipeline,
        level=route.level,
        study_uid=study_uid,
        series_uid=None,
        modality="",
        series_description="",
        instances=sum(facts.instances for facts in series),
        series_count=len(series),
        matched=match.matched,
        reason=match.reason,
        inputs={name: facts.series_uid for name, facts in match.inputs.items()},
        selected=tuple(facts.series_uid for facts in match.series),
        shadow=route.shadow,
    )


def evaluate(series: Sequence[SeriesFacts], routes: Sequence[Route]) -> list[ExplainRow]:
    """Evaluate every route on the given series.

    Parameters
    ----------
    series : sequence of SeriesFacts
        Series of one or more studies.
    routes : sequence of Route
        Compiled routes, in config order.

    Returns
    -------
    list of ExplainRow
        Per study (by UID): for each series, a row per series-level route; then a row per
        study-level route for the study.
    """
    rows: list[ExplainRow] = []
    by_study = sorted(series, key=lambda f: (f.study_uid, f.series_number or 0, f.series_uid))
    for study_uid, group in groupby(by_study, key=lambda f: f.study_uid):
        members = list(group)
        for facts in members:
            rows.extend(_series_row(r, facts) for r in routes if r.level is Level.SERIES)
        rows.extend(_study_row(r, study_uid, members) for r in routes if r.level is Level.STUDY)
    return rows


def explain(
    path: Path, routes: Sequence[Route], *, calling_ae: str | None = None
) -> list[ExplainRow]:
    """Which routes match the series under ``path``, and why.

    Parameters
    ----------
    path : Path
        A DICOM file or a folder tree; non-DICOM files are skipped (see :func:`scan` for the
        list and the count).
    routes : sequence of Route
        Compiled routes (:func:`compile_routes`).
    calling_ae : str, optional
        AE title to assume as the sender; None: ``calling_ae`` conditions see it absent.

    Returns
    -------
    list of ExplainRow
        See :func:`evaluate`.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    return evaluate(scan(path, calling_ae=calling_ae).series, routes)


_SUBJECT_WIDTH = 48


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(rows: Sequence[ExplainRow], *, skipped: int = 0) -> str:
    """A plain-text table: series, route, ``MATCH`` or ``no: <first failed condition>``.

    Parameters
    ----------
    rows : sequence of ExplainRow
        From :func:`explain` or :func:`evaluate`.
    skipped : int
        Files skipped while scanning (not DICOM); reported under the table when non-zero.

    Returns
    -------
    str
        The table, ending with a newline.
    """
    lines: list[str] = []
    if rows:
        table = [("SERIES", "ROUTE", "RESULT")] + [
            (_clip(printable(r.subject), _SUBJECT_WIDTH), r.route, printable(r.result))
            for r in rows
        ]
        widths = [max(len(line[col]) for line in table) for col in range(2)]
        for subject, route, result in table:
            lines.append(f"{subject:<{widths[0]}}  {route:<{widths[1]}}  {result}")
    else:
        lines.append("no rows: no DICOM series found, or no routes configured")
    if skipped:
        lines.append(
            f"{skipped} file{'s' if skipped != 1 else ''} skipped (not DICOM, or no series UID)"
        )
    return "\n".join(lines) + "\n"


def render_json(rows: Sequence[ExplainRow], *, skipped: int = 0) -> str:
    """The rows as JSON for scripts: ``{"rows": [...], "skipped_files": N}``.

    Parameters
    ----------
    rows : sequence of ExplainRow
        From :func:`explain` or :func:`evaluate`.
    skipped : int
        Files skipped while scanning (not DICOM).

    Returns
    -------
    str
        Indented JSON, ending with a newline.
    """
    document = {"rows": [row.to_dict() for row in rows], "skipped_files": skipped}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
