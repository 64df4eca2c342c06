"""Configuration: schema (pydantic), loader (YAML), and the commented default file."""

from importlib import resources

from dicomnode.config.loader import (
    DEFAULTS,
    check_routes,
    find_config,
    load_config,
    parse_config,
)
from dicomnode.config.schema import (
    AllowEntry,
    Config,
    DatabaseConfig,
    DestinationConfig,
    DicomDestination,
    ExportConfig,
    LateArrivals,
    LogFormat,
    LoggingConfig,
    NodeConfig,
    PipelineConfig,
    StabilityConfig,
    StorageConfig,
    StowDestination,
    WorkerDevice,
    WorkersConfig,
    default_data_dir,
)

__all__ = [
    "DEFAULTS",
    "AllowEntry",
    "Config",
    "DatabaseConfig",
    "DestinationConfig",
    "DicomDestination",
    "ExportConfig",
    "LateArrivals",
    "LogFormat",
    "LoggingConfig",
    "NodeConfig",
    "PipelineConfig",
    "StabilityConfig",
    "StorageConfig",
    "StowDestination",
    "WorkerDevice",
    "WorkersConfig",
    "check_routes",
    "default_config_text",
    "default_data_dir",
    "find_config",
    "load_config",
    "parse_config",
]


def default_config_text() -> str:
    """The commented default configuration written by ``dicomnode init``."""
    return resources.files("dicomnode.config").joinpath("default.yaml").read_text("utf-8")
