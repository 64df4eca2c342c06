"""The shape of a route as written under ``routes:`` in the YAML config (DESIGN §4).

These pydantic models validate one route's syntax and everything that can be checked on a
route alone: the condition forms, DICOM keywords, regular expressions, and which forms apply
to which attributes. References to other parts of the config (pipelines, destinations) and the
uniqueness of names are checked by :func:`dicomnode.routing.compile_routes`.

Every validation error of a route is reported as one error whose message names the route,
e.g. ``route 'brain-flair': when.SeriesDescription: bad regex '(': missing ), unterminated
subpattern``, so a config loader that embeds :class:`RouteSpec` in its own model reports
errors a user can act on.

Condition syntax (one condition per attribute keyword)::

    Modality: CT                        # equality (case-insensitive, padding stripped)
    BodyPartExamined: [CHEST, LUNG]     # one of
    SeriesDescription: {regex: flair}   # case-insensitive search
    SliceThickness: {min: 0.5, max: 3}  # inclusive numeric range, either bound optional
    ContrastBolusAgent: {present: true} # presence (false: absence)
    ImageType: {not: LOCALIZER}         # negation of any condition
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydicom.datadict import dictionary_VR, keyword_dict, tag_for_keyword

from dicomnode.results.kinds import OutputKind

__all__ = [
    "ConditionSpec",
    "Level",
    "NotCondition",
    "Output",
    "PresentCondition",
    "Priority",
    "PriorsPolicy",
    "RangeCondition",
    "RegexCondition",
    "RouteSpec",
    "SPECIAL_KEYS",
]

#: Condition keys that are not DICOM attributes: the series' instance count and the AE title
#: of the sender.
SPECIAL_KEYS = frozenset({"instances", "calling_ae"})

#: Value representations whose values cannot be compared: only ``present`` applies to them.
_OPAQUE_VRS = frozenset({"SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "OB or OW"})

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Level(StrEnum):
    """What one job of a route processes: one series, or a whole study."""

    SERIES = "series"
    STUDY = "study"


class Priority(StrEnum):
    """How urgently a route's jobs are served: the queue hands out ``stat`` before ``high``
    before ``routine`` jobs, then the oldest first (no running job is preempted)."""

    STAT = "stat"
    HIGH = "high"
    ROUTINE = "routine"

    @property
    def rank(self) -> int:
        """The stored, sortable form: 0 (stat), 1 (high), 2 (routine); lower is served first."""
        return _PRIORITY_RANKS[self]

    @classmethod
    def from_rank(cls, rank: int) -> Priority:
        """The priority stored as ``rank`` (:attr:`rank`)."""
        return list(cls)[rank]


_PRIORITY_RANKS = {priority: rank for rank, priority in enumerate(Priority)}


#: A result object a route asks its pipeline to produce (the one :class:`OutputKind`).
Output = OutputKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _scalar(value: Any) -> Any:
    """Reject YAML values that are not text or numbers before the union sees them."""
    if isinstance(value, bool):
        raise ValueError(
            f"{str(value).lower()} is not a DICOM value; quote it if you mean the text "
            "(YAML reads yes/no/on/off as true/false)"
        )
    if not isinstance(value, str | int | float):
        raise ValueError(
            f"expected a text or a number, got {type(value).__name__} {value!r}"
            " (DICOM dates are written YYYYMMDD)"
        )
    return value


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return value


#: A value to compare with: text or a number (never a boolean).
Scalar = Annotated[StrictStr | StrictInt | StrictFloat, BeforeValidator(_scalar)]
#: A bound of a range.
Number = Annotated[StrictInt | StrictFloat, BeforeValidator(_number)]


class RegexCondition(_Strict):
    """``{regex: PATTERN}``: a case-insensitive :func:`re.search` in any value."""

    regex: StrictStr

    @field_validator("regex")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern, re.IGNORECASE)
        except re.error as err:
            raise ValueError(f"bad regex {pattern!r}: {err.msg}") from None
        return pattern


class RangeCondition(_Strict):
    """``{min: X, max: Y}``: every value is a number in ``[min, max]``; either bound optional."""

    min: Number | None = None
    max: Number | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RangeCondition:
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class PresentCondition(_Strict):
    """``{present: true}``: the attribute has a value; ``false``: it is absent or empty."""

    present: StrictBool


class NotCondition(_Strict):
    """``{not: CONDITION}``: the inner condition does not hold (an absent value satisfies it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    negated: ConditionSpec = Field(alias="not")


def _condition_tag(value: Any) -> str | None:
    """Tell the condition form of raw YAML (or of an already built model)."""
    if isinstance(value, BaseModel):
        return {
            RegexCondition: "regex",
            RangeCondition: "range",
            PresentCondition: "present",
            NotCondition: "not",
        }.get(type(value))
    if isinstance(value, Mapping):
        for key, tag in (("regex", "regex"), ("min", "range"), ("max", "range")):
            if key in value:
                return tag
        for key in ("present", "not"):
            if key in value:
                return key
        return None
    if isinstance(value, list | tuple):
        return "list"
    return "value"


#: One condition, in any of its forms.
ConditionSpec = Annotated[
    Annotated[Scalar, Tag("value")]
    | Annotated[list[Scalar], Field(min_length=1), Tag("list")]
    | Annotated[RegexCondition, Tag("regex")]
    | Annotated[RangeCondition, Tag("range")]
    | Annotated[PresentCondition, Tag("present")]
    | Annotated[NotCondition, Tag("not")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_form",
        custom_error_message=(
            "not a condition: use a value, a list, {regex: ...}, {min: ..., max: ...}, "
            "{present: true|false} or {not: ...}"
        ),
    ),
]
NotCondition.model_rebuild()


def _known_key(key: str) -> str:
    """Accept a special key or a DICOM keyword of pydicom's dictionary."""
    if key in SPECIAL_KEYS or tag_for_keyword(key) is not None:
        return key
    known = [*keyword_dict, *SPECIAL_KEYS]
    prefixed = sorted((k for k in known if k.lower().startswith(key.lower())), key=len)
    hint = prefixed[:1] or difflib.get_close_matches(key, known, n=1)
    more = f" (did you mean {hint[0]!r}?)" if hint else ""
    raise ValueError(f"unknown DICOM keyword {key!r}{more}")


ConditionKey = Annotated[str, AfterValidator(_known_key)]
When = dict[ConditionKey, ConditionSpec]


def _only_presence(condition: Any) -> bool:
    if isinstance(condition, NotCondition):
        return _only_presence(condition.negated)
    return isinstance(condition, PresentCondition)


def _check_comparable(section: str, when: Mapping[str, Any]) -> None:
    """Refuse value conditions on sequences and binary attributes."""
    for key, condition in when.items():
        if key in SPECIAL_KEYS or _only_presence(condition):
            continue
        tag = tag_for_keyword(key)
        vr = dictionary_VR(tag) if tag is not None else ""
        if vr in _OPAQUE_VRS:
            raise ValueError(
                f"{section}.{key}: {key} has VR {vr}, whose values cannot be compared; "
                "only {present: true|false} applies"
            )


#: Parts of pydantic's error locations that are union tags or markers, not config keys.
_LOC_NOISE = frozenset({"[key]", "value", "list", "range", "int", "float", "str"})
#: Union tags that are followed by the field of the same name.
_LOC_TAGS = frozenset({"regex", "present", "not"})


def _format_loc(loc: tuple[int | str, ...]) -> str:
    """Turn pydantic's location into the dotted path a user sees in the YAML."""
    parts = [str(part) for part in loc if str(part) not in _LOC_NOISE]
    kept: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part in _LOC_TAGS and i + 1 < len(parts):
            # a union tag: followed by its own field (keep one) or by an unknown key (drop it)
            if parts[i + 1] == part:
                kept.append(part)
                i += 1
            i += 1
            continue
        kept.append(part)
        i += 1
    return ".".join(kept)


def _format_errors(exc: ValidationError) -> str:
    messages: list[str] = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if message == "Extra inputs are not permitted":
            message = "unknown key"
        where = _format_loc(error["loc"])
        if message.startswith("bad regex"):
            where = where.removesuffix(".regex")
        text = f"{where}: {message}" if where else message
        if text not in messages:
            messages.append(text)
    return "; ".join(messages)


_LOOKBACK_RE = re.compile(r"\s*([1-9][0-9]{0,4})\s*([dmy])\s*", re.IGNORECASE)
_DAYS_PER = {"d": 1, "m": 30, "y": 365}


def lookback_days(text: str) -> int:
    """Days of a look-back written ``400d``, ``18m`` or ``5y`` (a month is 30 days, a year 365).

    Raises
    ------
    ValueError
        Not a positive number followed by ``d``, ``m`` or ``y``.
    """
    found = _LOOKBACK_RE.fullmatch(text)
    if found is None:
        raise ValueError(
            f"lookback {text!r}: a positive number of days, months or years, e.g. 400d, 18m, 5y"
        )
    return int(found.group(1)) * _DAYS_PER[found.group(2).lower()]


class PriorsPolicy(_Strict):
    """``priors:`` of a route: which earlier studies of the patient a job gets as priors.

    Parameters
    ----------
    from_ : list of str
        Names of ``sources`` asked, in order (key ``from``).
    modality : str, optional
        Modality of the prior series (default: any).
    when : dict
        Conditions on the prior series, in the route's condition language, tested on what
        the source answers at SERIES level (``instances`` is its series' instance count).
    lookback : str
        How far back a prior study may be: ``400d``, ``18m``, ``5y`` (default ``5y``).
    most_recent : int
        How many prior studies, newest first (default 1).
    max_bytes : ByteSize
        Budget of the retrieved series of one job (e.g. ``2GB``; default 2 GB).
    timeout : float
        Seconds the job waits for its priors before it runs without them (default 120).
    """

    from_: list[StrictStr] = Field(alias="from", min_length=1)
    modality: StrictStr | None = None
    when: When = Field(default_factory=dict)
    lookback: StrictStr = "5y"
    most_recent: StrictInt = Field(1, ge=1, le=20)
    max_bytes: ByteSize = ByteSize(2 * 1000**3)
    timeout: Number = Field(120.0, gt=0, le=3600)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, text: str) -> str:
        lookback_days(text)
        return text

    @property
    def lookback_days(self) -> int:
        """:attr:`lookback` in days."""
        return lookback_days(self.lookback)


class RouteSpec(_Strict):
    """One route of the config, as written.

    Parameters
    ----------
    name : str
        Unique name of the route (letters, digits, ``.``, ``_``, ``-``).
    pipeline : str
        Name of the pipeline that runs on what the route selects.
    level : Level
        ``series`` (one job per matching series, default) or ``study`` (one job per study,
        once the whole study is stable).
    when : dict
        Condition key → condition; all must hold. For a study-level route they filter the
        series of the study that take part.
    inputs : dict, optional
        Study-level routes only: input name → a ``when``-style mapping that selects one series
        of the study per name (e.g. ``t1c``, ``flair``).
    send_to : list of str
        Destination names that receive the results; may be empty only when ``shadow``.
    outputs : list of Output, optional
        Result objects to produce; the pipeline's defaults when left out.
    shadow : bool
        Run the pipeline but send nothing (default false).
    priority : Priority
        ``stat``, ``high`` or ``routine`` (default): the order in which free workers take
        queued jobs (then oldest first).
    priors : PriorsPolicy, optional
        Earlier studies of the patient that each job gets as priors (pipelines that use
        them only; see :attr:`dicomnode.pipeline.Pipeline.uses_priors`).
    """

    name: StrictStr
    pipeline: StrictStr = Field(min_length=1)
    level: Level = Level.SERIES
    when: When = Field(default_factory=dict)
    inputs: dict[StrictStr, When] | None = None
    send_to: list[StrictStr] = Field(default_factory=list)
    outputs: list[Output] | None = None
    shadow: StrictBool = False
    priority: Priority = Priority.ROUTINE
    priors: PriorsPolicy | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _name_the_route(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> RouteSpec:
        try:
            spec: RouteSpec = handler(data)
            spec._check_consistent()
        except ValidationError as exc:
            detail = _format_errors(exc)
        except ValueError as exc:
            detail = str(exc)
        else:
            return spec
        name = data.get("name") if isinstance(data, Mapping) else getattr(data, "name", None)
        raise PydanticCustomError(
            "invalid_route",
            "route {route}: {detail}",
            {"route": repr(name) if name else "(unnamed)", "detail": detail},
        )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, name: str) -> str:
        if not _NAME_RE.fullmatch(name):
            raise ValueError(
                f"{name!r}: a route name is letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return name

    @field_validator("send_to")
    @classmethod
    def _no_repeats(cls, send_to: list[str]) -> list[str]:
        repeated = sorted({dest for dest in send_to if send_to.count(dest) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(repr, repeated))} more than once")
        return send_to

    def _check_consistent(self) -> None:
        """Checks that involve several fields; raise ValueError naming the key."""
        if self.inputs is not None:
            if self.level is not Level.STUDY:
                raise ValueError("inputs: named inputs need level: study")
            if not self.inputs:
                raise ValueError("inputs: name at least one input, or leave inputs out")
            for input_name in self.inputs:
                if not _NAME_RE.fullmatch(input_name):
                    raise ValueError(
                        f"inputs.{input_name}: an input name is letters, digits, '.', '_' or '-'"
                    )
        if not self.send_to and not self.shadow:
            raise ValueError("send_to: name at least one destination, or set shadow: true")
        _check_comparable("when", self.when)
        if self.priors is not None:
            _check_comparable("priors.when", self.priors.when)
        for input_name, when in (self.inputs or {}).items():
            _check_comparable(f"inputs.{input_name}", when)
