"""Compiled conditions and the observed values they are tested against.

A condition is tested against an :class:`Observed` value: the values of one attribute of a
series (several for a multi-valued attribute such as ImageType), or none when the attribute is
absent or empty. The semantics, in one place:

- equality (``Modality: CT``): text is compared after stripping DICOM padding (spaces, NULs),
  case-insensitively. A number in the config compares numerically with any value that reads
  as a number (``SliceThickness: 3`` matches ``"3.0"``); a text compares numerically only with
  attributes whose VR is numeric (DS, IS, US, FL, ...), so UIDs are never compared as numbers.
- one of (``[CHEST, LUNG]``): equality with any of the listed values.
- regex (``{regex: flair}``): :func:`re.search`, case-insensitive.
- range (``{min: 1, max: 3}``): inclusive; *every* value must be a number within the bounds
  (``PixelSpacing: {max: 1.0}`` means both spacings).
- equality, one of and regex hold on a multi-valued attribute when *any* value matches.
- presence (``{present: true}``): the attribute has a non-empty value.
- negation (``{not: ...}``): the inner condition does not hold.
- an absent attribute fails every condition except ``{present: false}`` and ``{not: ...}``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Condition",
    "Equals",
    "Item",
    "Not",
    "Observed",
    "OneOf",
    "Present",
    "Range",
    "Regex",
]

_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PADDING = " \x00"


def _as_number(text: str) -> float | None:
    """Read a decimal number the way DICOM writes it (DS/IS), or None."""
    return float(text) if _NUMBER_RE.fullmatch(text) else None


@dataclass(frozen=True)
class Item:
    """One value of an attribute: its text (padding stripped) and, if it reads as one, a number."""

    text: str
    number: float | None

    @classmethod
    def of(cls, value: object) -> Item:
        """Build an item from a pydicom value (str, int, float, DSfloat, IS, PersonName...)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(str(value).strip(_PADDING), float(value))
        text = str(value).strip(_PADDING)
        return cls(text, _as_number(text))


@dataclass(frozen=True)
class Observed:
    """The values of one attribute of a series, as the conditions see them.

    Parameters
    ----------
    items : tuple of Item
        The values; empty when the attribute is absent or has an empty value.
    numeric : bool
        The attribute's VR is numeric: texts compare as numbers, values render unquoted.
    """

    items: tuple[Item, ...]
    numeric: bool = False

    @classmethod
    def of(cls, values: Iterable[object], *, numeric: bool = False) -> Observed:
        """Observed values from raw values; empty ones are dropped."""
        items = tuple(Item.of(value) for value in values if value is not None)
        return cls(tuple(item for item in items if item.text), numeric)

    @property
    def absent(self) -> bool:
        """The attribute is absent, or present with an empty value."""
        return not self.items

    def render(self) -> str:
        """The values as a user reads them: ``5.0``, ``'MR'``, ``'ORIGINAL\\PRIMARY'``."""
        joined = "\\".join(item.text for item in self.items)
        return joined if self.numeric else f"'{joined}'"


def _render_expected(value: str | int | float) -> str:
    return f"'{value}'" if isinstance(value, str) else repr(value)


class Condition(ABC):
    """A compiled condition on the values of one attribute."""

    @abstractmethod
    def test(self, observed: Observed) -> bool:
        """Whether the condition holds for these values."""

    @abstractmethod
    def describe(self) -> str:
        """What the condition expects, in words (``<= 3.0``, ``one of 'CHEST', 'LUNG'``)."""


@dataclass(frozen=True)
class Equals(Condition):
    """Equality with one value (see the module docstring for the comparison rules)."""

    expected: str | int | float

    def _equal(self, item: Item, numeric: bool) -> bool:
        expected = self.expected
        if not isinstance(expected, str):
            return item.number is not None and item.number == float(expected)
        text = expected.strip(_PADDING)
        if item.text.casefold() == text.casefold():
            return True
        if numeric and item.number is not None:
            number = _as_number(text)
            return number is not None and number == item.number
        return False

    def test(self, observed: Observed) -> bool:
        return any(self._equal(item, observed.numeric) for item in observed.items)

    def describe(self) -> str:
        return _render_expected(self.expected)


@dataclass(frozen=True)
class OneOf(Condition):
    """Membership: equal to any of the values."""

    choices: tuple[Equals, ...]

    def test(self, observed: Observed) -> bool:
        return any(choice.test(observed) for choice in self.choices)

    def describe(self) -> str:
        return "one of " + ", ".join(choice.describe() for choice in self.choices)


@dataclass(frozen=True)
class Regex(Condition):
    """A case-insensitive search in any value."""

    pattern: re.Pattern[str]

    @classmethod
    def compile(cls, pattern: str) -> Regex:
        """Compile ``pattern`` case-insensitively (raises :class:`re.error`)."""
        return cls(re.compile(pattern, re.IGNORECASE))

    def test(self, observed: Observed) -> bool:
        return any(self.pattern.search(item.text) for item in observed.items)

    def describe(self) -> str:
        return f"regex '{self.pattern.pattern}'"


@dataclass(frozen=True)
class Range(Condition):
    """Every value is a number within ``[low, high]``; a missing bound is open."""

    low: int | float | None = None
    high: int | float | None = None

    def _within(self, item: Item) -> bool:
        number = item.number
        if number is None:
            return False
        return (self.low is None or number >= self.low) and (
            self.high is None or number <= self.high
        )

    def test(self, observed: Observed) -> bool:
        return not observed.absent and all(self._within(item) for item in observed.items)

    def describe(self) -> str:
        if self.low is None:
            return f"<= {self.high!r}"
        if self.high is None:
            return f">= {self.low!r}"
        return f"between {self.low!r} and {self.high!r}"


@dataclass(frozen=True)
class Present(Condition):
    """The attribute has a value (``wanted=True``) or is absent/empty (``wanted=False``)."""

    wanted: bool

    def test(self, observed: Observed) -> bool:
        return observed.absent != self.wanted

    def describe(self) -> str:
        return "present" if self.wanted else "absent"


@dataclass(frozen=True)
class Not(Condition):
    """Negation of another condition."""

    inner: Condition

    def test(self, observed: Observed) -> bool:
        return not self.inner.test(observed)

    def describe(self) -> str:
        return f"not {self.inner.describe()}"
