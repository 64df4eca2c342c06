"""Who may associate: calling AE title and source address against ``node.allow``."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from dicomnode.config.schema import AllowEntry

__all__ = ["AccessDecision", "Refusal", "decide"]


class Refusal(enum.StrEnum):
    """Why an association request is refused."""

    UNKNOWN_AE = "calling AE title not allowed"
    WRONG_ADDRESS = "calling AE not allowed from this address"


@dataclass(frozen=True)
class AccessDecision:
    """``refusal`` is ``None`` when the peer is allowed."""

    refusal: Refusal | None

    @property
    def allowed(self) -> bool:
        """Whether the association may proceed."""
        return self.refusal is None


def decide(allow: Sequence[AllowEntry], ae_title: str, address: str) -> AccessDecision:
    """Check a peer against the allow-list; an empty list allows every peer.

    Parameters
    ----------
    allow : sequence of AllowEntry
        ``node.allow`` from the config.
    ae_title : str
        The calling AE title of the association request.
    address : str
        The peer's IP address.
    """
    if not allow:
        return AccessDecision(None)
    if any(entry.permits(ae_title, address) for entry in allow):
        return AccessDecision(None)
    ae = ae_title.strip()
    known_ae = any(entry.ae_title is None or entry.ae_title == ae for entry in allow)
    return AccessDecision(Refusal.WRONG_ADDRESS if known_ae else Refusal.UNKNOWN_AE)
