"""Typed configuration of the node, validated once at start-up.

Every section is a pydantic model with ``extra="forbid"``: an unknown key is an error, never
silently ignored. Defaults are the embedded defaults a node runs on with no config file at all.
"""

from __future__ import annotations

import ipaddress
import os
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    model_validator,
)

__all__ = [
    "AllowEntry",
    "Config",
    "DatabaseConfig",
    "LateArrivals",
    "LogFormat",
    "LoggingConfig",
    "NodeConfig",
    "StabilityConfig",
    "StorageConfig",
    "default_data_dir",
]


def default_data_dir() -> Path:
    """Data directory of a node without config: ``$DICOMNODE_DATA_DIR`` or the XDG data dir."""
    env = os.environ.get("DICOMNODE_DATA_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "dicomnode"


def _check_ae_title(value: str) -> str:
    if not value.strip():
        raise ValueError("an AE title must not be empty or only spaces")
    if len(value) > 16:
        raise ValueError(f"an AE title has at most 16 characters, got {len(value)}")
    if "\\" in value or any(ord(c) < 32 or ord(c) > 126 for c in value):
        raise ValueError("an AE title holds printable ASCII characters only, no backslash")
    return value.strip()


def _check_network(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError("expected an IP address or a CIDR range such as 10.0.0.0/24") from None
    return value


AETitle = Annotated[str, AfterValidator(_check_ae_title)]
Network = Annotated[str, AfterValidator(_check_network)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AllowEntry(_Section):
    """One allowed sender: a calling AE title, a source address (IP or CIDR), or both."""

    ae_title: AETitle | None = None
    host: Network | None = None

    @model_validator(mode="after")
    def _one_of(self) -> AllowEntry:
        if self.ae_title is None and self.host is None:
            raise ValueError("an allow entry needs ae_title, host or both")
        return self

    def permits(self, ae_title: str, address: str) -> bool:
        """Whether a peer calling as ``ae_title`` from ``address`` matches this entry."""
        if self.ae_title is not None and self.ae_title != ae_title.strip():
            return False
        if self.host is not None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                return False
            if ip not in ipaddress.ip_network(self.host, strict=False):
                return False
        return True


class NodeConfig(_Section):
    """The DICOM listener (SCP)."""

    ae_title: AETitle = "DICOMNODE"
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=1, le=65535)
    max_associations: int = Field(16, ge=1, le=1000)
    max_pdu: int = Field(
        262144,
        ge=4096,
        le=16 * 1024 * 1024,
        description="maximum PDU length offered to senders, bytes",
    )
    handshake_timeout: float = Field(5.0, gt=0, le=600)
    dimse_timeout: float = Field(60.0, gt=0, le=3600)
    network_timeout: float = Field(60.0, gt=0, le=3600)
    allow: list[AllowEntry] = Field(default_factory=list)


class StorageConfig(_Section):
    """The durable store of received instances."""

    path: Path | None = None
    min_free: ByteSize = ByteSize(2 * 1000**3)
    keep_days: int = Field(7, ge=0)


class DatabaseConfig(_Section):
    """The state database (SQLite by default, PostgreSQL for many workers/hosts)."""

    url: str | None = None


class LateArrivals(str, Enum):
    """What an instance arriving after its series completed does to the results."""

    RERUN = "rerun"
    IGNORE = "ignore"


class StabilityConfig(_Section):
    """When a series (study) counts as complete: that many seconds without a new instance."""

    series_seconds: float = Field(30.0, gt=0, le=86400)
    study_seconds: float = Field(90.0, gt=0, le=86400)
    late_arrivals: LateArrivals = LateArrivals.RERUN

    @model_validator(mode="after")
    def _study_after_series(self) -> StabilityConfig:
        if self.study_seconds < self.series_seconds:
            raise ValueError(
                f"study_seconds ({self.study_seconds}) must be >= series_seconds "
                f"({self.series_seconds})"
            )
        return self


class LogFormat(str, Enum):
    """Log line format."""

    JSON = "json"
    TEXT = "text"


class LoggingConfig(_Section):
    """Logging. Patient identifiers are never logged unless ``log_identifiers`` is true."""

    level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    format: LogFormat = LogFormat.JSON
    log_identifiers: bool = False


class Config(_Section):
    """The whole configuration of a node."""

    data_dir: Path = Field(default_factory=default_data_dir)
    node: NodeConfig = Field(default_factory=NodeConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: object) -> object:
        """A section present with only comments under it (YAML null) means its defaults."""
        if isinstance(data, dict):
            return {k: ({} if v is None and k != "data_dir" else v) for k, v in data.items()}
        return data

    @property
    def store_path(self) -> Path:
        """Root of the durable store (``storage.path`` or ``<data_dir>/store``)."""
        return self.storage.path if self.storage.path is not None else self.data_dir / "store"

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the state DB (``database.url`` or SQLite in ``data_dir``)."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data_dir / 'state.db').as_posix()}"
