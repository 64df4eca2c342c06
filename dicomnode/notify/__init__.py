"""dicomnode.notify: webhooks told about job outcomes and findings, from a durable outbox.

Flow: the transaction that changes a job (or a delivery) also writes one ``notifications``
row per webhook that wants the event (:class:`Outbox`), with the JSON body built then; a
periodic sweep (:class:`WebhookSender`) POSTs due rows, signed with HMAC-SHA256 when the
webhook has a secret, retries failures with backoff and dead-letters them at the limit.
Nothing here runs in, or waits for, a job. The config is :class:`NotifyConfig` (``notify:``).

Only the config models are imported with the package (the config schema embeds them); the
rest, which needs the job tables, is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from dicomnode.notify.schema import Event, FindingCondition, NotifyConfig, WebhookConfig

__all__ = [
    "SIGNATURE_HEADER",
    "Event",
    "FindingCondition",
    "FindingsSummary",
    "Measured",
    "Notification",
    "NotificationState",
    "NotifyConfig",
    "Outbox",
    "WebhookConfig",
    "WebhookSender",
    "encode_body",
    "sign",
]

_LAZY = {
    "Notification": "models",
    "NotificationState": "models",
    "Outbox": "outbox",
    "encode_body": "outbox",
    "SIGNATURE_HEADER": "send",
    "WebhookSender": "send",
    "sign": "send",
    "FindingsSummary": "summary",
    "Measured": "summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"dicomnode.notify.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dicomnode.notify' has no attribute {name!r}")
