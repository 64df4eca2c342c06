"""The JSON log formatter: extra fields never replace the standard keys."""

from __future__ import annotations

import json
import logging

from dicomnode.logs import JsonFormatter


def test_extra_fields_never_replace_the_standard_keys():
    record = logging.LogRecord("dicomnode.x", logging.ERROR, "", 0, "a %s", ("message",), None)
    record.level = "series"  # as extra={"level": ...} would set it
    record.message_id = 7
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "ERROR" and entry["message"] == "a message"
    assert entry["extra_level"] == "series" and entry["message_id"] == 7
