"""Typed configuration of the node, validated once at start-up.

Every section is a pydantic model with ``extra="forbid"``: an unknown key is an error, never
silently ignored. Defaults are the embedded defaults a node runs on with no config file at all.
"""

from __future__ import annotations

import ipaddress
import os
import re
from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ByteSize,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from dicomnode.notify.schema import NotifyConfig
from dicomnode.results.kinds import DEFAULT_OUTPUTS, OutputKind
from dicomnode.routing.schema import RouteSpec

__all__ = [
    "AllowEntry",
    "AuditConfig",
    "SyslogConfig",
    "SyslogTransport",
    "Config",
    "DatabaseConfig",
    "HttpConfig",
    "AnySource",
    "DestinationConfig",
    "DicomwebSource",
    "DicomDestination",
    "ExportConfig",
    "PipelineConfig",
    "RetrieveMethod",
    "SourceConfig",
    "StowDestination",
    "WorkerDevice",
    "WorkersConfig",
    "LateArrivals",
    "LogFormat",
    "LoggingConfig",
    "NodeConfig",
    "NotifyConfig",
    "StabilityConfig",
    "StorageConfig",
    "ClientTlsConfig",
    "TlsConfig",
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


_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

_CLASS_PATH_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _check_class_path(value: str) -> str:
    if not _CLASS_PATH_RE.fullmatch(value):
        raise ValueError("expected package.module:Class, e.g. mypackage.pipelines:MyPipeline")
    return value


ClassPath = Annotated[str, AfterValidator(_check_class_path)]
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


class TlsConfig(_Section):
    """DICOM TLS (PS3.15 B.12) on the listener: TLS 1.2 or later, client certificates required.

    With this section the listener speaks TLS only; every peer must present a certificate
    issued by ``ca``.
    """

    cert: Path = Field(description="the node's certificate chain (PEM)")
    key: Path = Field(description="the node's private key (PEM, unencrypted)")
    ca: Path = Field(description="CA certificate(s) (PEM) that client certificates must chain to")


#: ``node.processes`` by default: the number of cores, at most this.
MAX_DEFAULT_PROCESSES = 8


class NodeConfig(_Section):
    """The DICOM listener (SCP)."""

    ae_title: AETitle = "DICOMNODE"
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=1, le=65535)
    max_associations: int = Field(16, ge=1, le=1000)
    processes: int | None = Field(
        None,
        ge=1,
        le=64,
        description=(
            "SCP processes that accept associations on the one listening port, each with its "
            "own pynetdicom AE and database connections (default: the number of cores, at "
            f"most {MAX_DEFAULT_PROCESSES}); 1: the SCP runs in the node's own process"
        ),
    )
    max_associations_per_peer: int | None = Field(
        None,
        ge=1,
        le=1000,
        description=(
            "associations one peer (calling AE title and source address) may hold at once "
            "(default: half of max_associations, at least 1)"
        ),
    )
    first_message_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="seconds an accepted association has to send its first DIMSE request",
    )
    max_pdu: int = Field(
        262144,
        ge=4096,
        le=16 * 1024 * 1024,
        description="maximum PDU length offered to senders, bytes",
    )
    handshake_timeout: float = Field(
        5.0,
        gt=0,
        le=600,
        description="seconds a new connection has to finish TLS and send its association request",
    )
    dimse_timeout: float = Field(60.0, gt=0, le=3600)
    network_timeout: float = Field(60.0, gt=0, le=3600)
    allow: list[AllowEntry] = Field(default_factory=list)
    tls: TlsConfig | None = None
    commitment_wait: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="seconds a Storage Commitment request waits for listed instances that are "
        "not stored yet (still arriving on another association) before it reports them failed",
    )
    uid_root: str = Field(
        "2.25",
        pattern=r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$",
        max_length=40,
        description="root of the UIDs of result objects (2.25: UUID-derived)",
    )

    @property
    def scp_processes(self) -> int:
        """``processes``, or its default: the cores this process may use, at most
        :data:`MAX_DEFAULT_PROCESSES`."""
        if self.processes is not None:
            return self.processes
        return max(1, min(MAX_DEFAULT_PROCESSES, len(os.sched_getaffinity(0))))

    @property
    def per_peer_limit(self) -> int:
        """``max_associations_per_peer``, or its default: half of ``max_associations``."""
        if self.max_associations_per_peer is not None:
            return min(self.max_associations_per_peer, self.max_associations)
        return max(1, self.max_associations // 2)


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
    confirm_with: list[str] = Field(
        default_factory=list,
        description="names of `sources` asked by C-FIND, when an association that delivered "
        "instances is released, whether the node has every instance of the series (and study); "
        "equal counts complete at once, query failures leave it to the timers",
    )
    confirm_timeout: float = Field(
        10.0,
        gt=0,
        le=300,
        description="s: connection, association and C-FIND timeout of each confirmation query",
    )

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


class WorkerDevice(str, Enum):
    """Where inference runs: ``auto`` is CUDA when present, else the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class WorkersConfig(_Section):
    """Workers that claim jobs from the queue and run pipelines in a child process."""

    count: int = Field(1, ge=0, le=64, description="worker threads (serve) or workers (worker)")
    device: WorkerDevice = WorkerDevice.AUTO
    lease_seconds: float = Field(
        60.0, gt=0, le=86400, description="a job whose worker stops heartbeating is re-queued"
    )
    heartbeat_seconds: float = Field(10.0, gt=0, le=3600)
    poll_seconds: float = Field(1.0, gt=0, le=60, description="idle wait between claims")
    max_attempts: int = Field(3, ge=1, le=100, description="a job is dead after this many")
    backoff_seconds: float = Field(30.0, ge=0, le=86400, description="first retry delay")
    max_backoff_seconds: float = Field(3600.0, ge=0, le=7 * 86400)
    job_timeout: float = Field(3600.0, gt=0, le=7 * 86400, description="s per job, then killed")
    keep_warm: float = Field(
        600.0,
        ge=0,
        le=7 * 86400,
        description="s an idle inference process (torch, models) is kept after its last job; "
        "it starts again with the next job",
    )

    @model_validator(mode="after")
    def _lease_longer_than_heartbeat(self) -> WorkersConfig:
        if self.lease_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"lease_seconds ({self.lease_seconds}) must be > heartbeat_seconds "
                f"({self.heartbeat_seconds})"
            )
        return self


class ExportConfig(_Section):
    """Delivery of result objects to the destinations of a route."""

    max_attempts: int = Field(10, ge=1, le=1000, description="a delivery is dead after this many")
    backoff_seconds: float = Field(5.0, ge=0, le=86400, description="first retry delay")
    max_backoff_seconds: float = Field(600.0, ge=0, le=7 * 86400)
    timeout: float = Field(30.0, gt=0, le=3600, description="s: network/DIMSE timeout")
    poll_seconds: float = Field(1.0, gt=0, le=60)
    lease_seconds: float = Field(
        300.0, gt=0, le=86400, description="a batch whose sender died is sent again after this"
    )
    batch: int = Field(64, ge=1, le=1000, description="deliveries sent per association")
    probe_seconds: float = Field(
        5.0,
        ge=0,
        le=600,
        description="while deliveries to a destination back off after failed connections, "
        "C-ECHO it (STOW-RS: HTTP HEAD) this often and send them as soon as it answers; 0: off",
    )

    @field_validator("probe_seconds")
    @classmethod
    def _probe_period(cls, value: float) -> float:
        if 0 < value < 0.5:
            raise ValueError(f"probe_seconds must be 0 (off) or at least 0.5, got {value}")
        return value


class ClientTlsConfig(_Section):
    """DICOM TLS towards a destination: TLS 1.2+, the peer's certificate checked against ``ca``
    and its host name; ``cert``/``key`` for peers that require client
    certificates."""

    ca: Path = Field(description="CA certificate(s) (PEM) the peer's certificate chains to")
    cert: Path | None = Field(None, description="our certificate chain (PEM)")
    key: Path | None = Field(None, description="our private key (PEM, unencrypted)")

    @model_validator(mode="after")
    def _pair(self) -> ClientTlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


class DicomPeerConfig(_Section):
    """Where a DICOM peer listens, and how the node calls it."""

    ae_title: AETitle
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    calling_ae_title: AETitle | None = Field(
        None, description="our AE title towards this peer (default node.ae_title)"
    )
    tls: ClientTlsConfig | None = None


class DicomDestination(DicomPeerConfig):
    """A DICOM peer that receives results by C-STORE."""


class RetrieveMethod(str, Enum):
    """How priors come from a source: C-MOVE to the node's own SCP, or C-GET on the query's
    association."""

    MOVE = "move"
    GET = "get"


class SourceConfig(DicomPeerConfig):
    """A named PACS the node may query (completion confirmation, priors) and report to
    (storage commitment results on a new association).

    For priors by C-MOVE (``retrieve: move``, the default) the source must know the node as
    a move destination: its AE title (``node.ae_title``), host and port.
    """

    retrieve: RetrieveMethod = Field(
        RetrieveMethod.MOVE,
        description="how priors are retrieved: move (C-MOVE to node.ae_title) or get (C-GET)",
    )


class DicomwebSource(_Section):
    """A DICOMweb server the node finds priors at (QIDO-RS) and retrieves them from (WADO-RS).

    Requests go to ``url`` (the service's base URL, ``…/dicom-web``) with ``headers`` (an
    ``Authorization`` header, for instance); an ``https`` server's certificate is always
    checked, against ``ca`` when given, else against the system's CA certificates.
    """

    url: str = Field(pattern=r"^https?://", description="DICOMweb base URL (…/dicom-web)")
    headers: dict[str, str] = Field(default_factory=dict)
    ca: Path | None = Field(
        None, description="CA certificate(s) (PEM) an https server's certificate chains to"
    )


def _kind_by_url(web: type[BaseModel], tag: str) -> Discriminator:
    """The discriminator of a DICOM-or-DICOMweb entry: ``tag`` for an entry with a ``url``
    (or a ``web`` model), else ``dicom``."""

    def kind(value: object) -> str:
        if isinstance(value, web) or (isinstance(value, dict) and "url" in value):
            return tag
        return "dicom"

    return Discriminator(kind)


#: A source: ``{ae_title, host, port}`` (C-FIND, C-MOVE/C-GET) or ``{url}`` (QIDO-RS, WADO-RS).
AnySource = Annotated[
    Annotated[SourceConfig, Tag("dicom")] | Annotated[DicomwebSource, Tag("dicomweb")],
    _kind_by_url(DicomwebSource, "dicomweb"),
]


class StowDestination(_Section):
    """A DICOMweb server that receives results by STOW-RS."""

    url: str = Field(pattern=r"^https?://", description="DICOMweb base URL (…/dicom-web)")
    headers: dict[str, str] = Field(default_factory=dict)


#: A destination: ``{ae_title, host, port}`` (C-STORE) or ``{url}`` (STOW-RS).
DestinationConfig = Annotated[
    Annotated[DicomDestination, Tag("dicom")] | Annotated[StowDestination, Tag("stow")],
    _kind_by_url(StowDestination, "stow"),
]


class PipelineConfig(BaseModel):
    """``pipelines.<name>``: options handed to the pipeline, plus two keys the node reads.

    ``class`` names a pipeline class as ``package.module:Class`` (the plugin mechanism next to
    the ``dicomnode.pipelines`` entry points); ``outputs`` chooses the result objects. Every
    other key is the pipeline's own option (``bundle``, ``threshold``, ...).
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    class_path: ClassPath | None = Field(None, alias="class")
    outputs: list[OutputKind] = Field(default_factory=lambda: list(DEFAULT_OUTPUTS))

    @property
    def options(self) -> dict[str, object]:
        """The pipeline's own options (every key but ``class``), ``outputs`` included."""
        extra = dict(self.model_extra or {})
        extra["outputs"] = [o.value for o in self.outputs]
        return extra

    @property
    def chosen_outputs(self) -> list[OutputKind] | None:
        """``outputs`` when the config sets it, else None (the pipeline's defaults apply)."""
        return list(self.outputs) if "outputs" in self.model_fields_set else None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpTlsConfig(_Section):
    """HTTPS on the HTTP listener (TLS 1.2 or later): the session cookie is then ``Secure``
    and answers carry ``Strict-Transport-Security``."""

    cert: Path = Field(description="the node's certificate chain (PEM)")
    key: Path = Field(description="the node's private key (PEM, unencrypted)")


class HttpConfig(_Section):
    """The HTTP API and web app: health, readiness, Prometheus metrics, JSON, actions.

    On a loopback address it is open to local tools; on any other address a bearer token is
    required. Browsers are held to ``allowed_hosts``, same-origin state changes and a CSRF
    token whatever the address.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535, description="0 picks a free port")
    token: str | None = Field(None, min_length=16, description="bearer token, >= 16 chars")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header values served (name or name:port; '*' any); empty: the bind "
        "address, localhost, 127.0.0.1 and [::1] (and this machine's names on a wildcard bind)",
    )
    timeout_header: float = Field(
        10.0, gt=0, le=600, description="seconds a client has to send its request line and headers"
    )
    timeout_body: float = Field(
        30.0, gt=0, le=3600, description="seconds a request body may stall between two reads"
    )
    timeout_keep_alive: int = Field(
        5, ge=1, le=600, description="seconds an idle keep-alive connection stays open"
    )
    limit_concurrency: int = Field(
        256, ge=8, le=100_000, description="open connections before new requests get 503"
    )
    max_header_bytes: int = Field(
        16384, ge=1024, le=1_048_576, description="request line and headers, larger: 400"
    )
    tls: HttpTlsConfig | None = Field(None, description="serve HTTPS with this certificate")
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="lifetime of a web session (login cookie)"
    )
    max_stow_bytes: ByteSize = Field(
        ByteSize(4 * 1024**3),
        ge=1024,
        description="largest STOW-RS request body (all its instances), larger: 413",
    )

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host or "/" in host or any(c.isspace() for c in host):
                raise ValueError(f"{host!r}: a host name or address, optionally :port (no scheme)")
        return [h.lower() for h in hosts]

    @model_validator(mode="after")
    def _token_off_loopback(self) -> HttpConfig:
        if self.enabled and self.token is None and not _is_loopback(self.host):
            raise ValueError(
                f"http.host {self.host} is not a loopback address: set http.token "
                "(a bearer token of 16+ characters) or bind to 127.0.0.1"
            )
        return self


class SyslogTransport(str, Enum):
    """How audit messages travel: TLS (RFC 5425), plain TCP (RFC 6587) or UDP (RFC 5426)."""

    TLS = "tls"
    TCP = "tcp"
    UDP = "udp"


_SYSLOG_PORTS = {SyslogTransport.TLS: 6514, SyslogTransport.TCP: 601, SyslogTransport.UDP: 514}


class SyslogConfig(_Section):
    """``audit.syslog``: DICOM audit messages (PS3.15 A.5) to a syslog collector (a SIEM).

    TLS checks the collector's certificate against ``ca`` and its host name; ``cert``/``key``
    for collectors that require client certificates (RFC 5425 mutual authentication).
    """

    host: str = Field(min_length=1, description="the collector's host name or address")
    port: int | None = Field(None, ge=1, le=65535, description="default 6514 tls, 601 tcp, 514 udp")
    transport: SyslogTransport = SyslogTransport.TLS
    ca: Path | None = Field(None, description="CA certificate(s) (PEM) of the collector (tls)")
    cert: Path | None = Field(None, description="our certificate chain (PEM, tls)")
    key: Path | None = Field(None, description="our private key (PEM, unencrypted, tls)")
    app_name: str = Field("dicomnode", pattern=r"^[!-~]{1,48}$", description="RFC 5424 APP-NAME")
    queue: int = Field(
        10000, ge=1, le=1_000_000, description="messages held while the collector is down"
    )

    @model_validator(mode="after")
    def _tls_files(self) -> SyslogConfig:
        if self.transport is SyslogTransport.TLS:
            if self.ca is None:
                raise ValueError("transport tls needs ca (the collector's CA certificate)")
            if (self.cert is None) != (self.key is None):
                raise ValueError("cert and key go together")
        elif any(f is not None for f in (self.ca, self.cert, self.key)):
            raise ValueError(f"ca, cert and key apply to transport tls, not {self.transport.value}")
        return self

    @property
    def effective_port(self) -> int:
        """``port``, or the transport's registered port."""
        return self.port if self.port is not None else _SYSLOG_PORTS[self.transport]


class AuditConfig(_Section):
    """Where the audit trail goes besides the database: no ``syslog`` section, no syslog."""

    syslog: SyslogConfig | None = None


class Config(_Section):
    """The whole configuration of a node."""

    data_dir: Path = Field(default_factory=default_data_dir)
    node: NodeConfig = Field(default_factory=NodeConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    stability: StabilityConfig = Field(default_factory=StabilityConfig)
    workers: WorkersConfig = Field(default_factory=WorkersConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict)
    sources: dict[str, AnySource] = Field(default_factory=dict)
    routes: list[RouteSpec] = Field(default_factory=list)
    pipelines: dict[str, PipelineConfig] = Field(default_factory=dict)
    http: HttpConfig = Field(default_factory=HttpConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @field_validator("destinations", "pipelines", "sources")
    @classmethod
    def _names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _NAME_RE.fullmatch(name):
                raise ValueError(
                    f"{name!r}: a name is letters, digits, '.', '_' or '-' (at most 64)"
                )
        return value

    @model_validator(mode="after")
    def _known_sources(self) -> Config:
        unknown = [n for n in self.stability.confirm_with if n not in self.sources]
        if unknown:
            raise ValueError(
                f"stability.confirm_with names {', '.join(map(repr, unknown))}, not in sources "
                f"(known: {', '.join(sorted(self.sources)) or 'none'})"
            )
        web = [n for n in self.stability.confirm_with if n not in self.dicom_sources]
        if web:
            raise ValueError(
                f"stability.confirm_with names {', '.join(map(repr, web))}, a DICOMweb source: "
                "completion is confirmed by C-FIND only (name a DICOM source, with ae_title, "
                "host and port)"
            )
        for route in self.routes:
            if route.priors is None:
                continue
            unknown = [n for n in route.priors.from_ if n not in self.sources]
            if unknown:
                raise ValueError(
                    f"route {route.name!r}: priors.from names {', '.join(map(repr, unknown))}, "
                    f"not in sources (known: {', '.join(sorted(self.sources)) or 'none'})"
                )
        return self

    @model_validator(mode="after")
    def _notify_routes(self) -> Config:
        known = {route.name for route in self.routes}
        for name, hook in self.notify.webhooks.items():
            unknown = sorted(set(hook.routes or ()) - known)
            if unknown:
                raise ValueError(f"notify.webhooks.{name}.routes: unknown route {unknown[0]!r}")
        return self

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: object) -> object:
        """A section present with only comments under it (YAML null) means its defaults."""
        if isinstance(data, dict):
            empty: dict[str, object] = {"routes": []}
            return {
                k: (empty.get(k, {}) if v is None and k != "data_dir" else v)
                for k, v in data.items()
            }
        return data

    @property
    def class_paths(self) -> dict[str, str]:
        """``name -> "package.module:Class"`` of the pipelines given a ``class`` (see
        :class:`dicomnode.pipeline.PipelineRegistry`, which loads them)."""
        return {name: s.class_path for name, s in self.pipelines.items() if s.class_path}

    @property
    def dicom_sources(self) -> dict[str, SourceConfig]:
        """The DICOM ``sources`` (C-FIND, C-MOVE/C-GET, storage commitment), by name."""
        return {n: s for n, s in self.sources.items() if isinstance(s, SourceConfig)}

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
