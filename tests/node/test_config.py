"""Config validation and the CLI's config-facing commands."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from dicomnode.config import Config, default_config_text, load_config, parse_config
from dicomnode.errors import ConfigError
from testkit.nodeproc import free_port


def test_no_config_gives_the_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DICOMNODE_CONFIG", raising=False)
    monkeypatch.setenv("DICOMNODE_DATA_DIR", str(tmp_path / "d"))
    config, source = load_config()
    assert source == "<defaults>"
    assert config.node.ae_title == "DICOMNODE" and config.node.port == 11112
    assert config.database_url == f"sqlite:///{tmp_path / 'd' / 'state.db'}"
    assert config.store_path == tmp_path / "d" / "store"


def test_scp_processes_default_to_the_cores_at_most_eight(monkeypatch):
    for cores, expected in ((1, 1), (2, 2), (32, 8)):
        monkeypatch.setattr("os.sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert Config().node.scp_processes == expected
    assert parse_config({"node": {"processes": 12}}).node.scp_processes == 12


def test_the_commented_default_file_means_the_defaults(tmp_path):
    data = yaml.safe_load(default_config_text())
    config = parse_config(data, base=tmp_path)
    defaults = Config(data_dir=tmp_path / "data")
    assert config == defaults


@pytest.mark.parametrize(
    ("data", "key", "words"),
    [
        ({"node": {"port": 70000}}, "node.port", "less than or equal to 65535"),
        ({"node": {"prot": 1}}, "node.prot", "unknown key (allowed: ae_title"),
        ({"nodes": {}}, "nodes", "unknown key (allowed: audit, data_dir, database"),
        ({"node": {"ae_title": "X" * 17}}, "node.ae_title", "at most 16 characters"),
        ({"node": {"ae_title": "A\\B"}}, "node.ae_title", "no backslash"),
        ({"node": {"allow": [{"host": "10.0.0.300"}]}}, "node.allow[0].host", "CIDR range"),
        ({"node": {"allow": [{}]}}, "node.allow[0]", "ae_title, host or both"),
        (
            {"node": {"allow": [{"ae_title": "A", "hots": "x"}]}},
            "node.allow[0].hots",
            "unknown key",
        ),
        ({"node": {"commitment_wait": -1}}, "node.commitment_wait", "greater than or equal to 0"),
        ({"node": {"processes": 0}}, "node.processes", "greater than or equal to 1"),
        ({"node": {"processes": 65}}, "node.processes", "less than or equal to 64"),
        ({"storage": {"min_free": "lots"}}, "storage.min_free", "could not parse"),
        ({"stability": {"series_seconds": -1}}, "stability.series_seconds", "greater than 0"),
        ({"stability": {"series_seconds": 100}}, "stability", "study_seconds (90.0) must be"),
        ({"stability": {"late_arrivals": "maybe"}}, "stability.late_arrivals", "'rerun'"),
        ({"logging": {"level": "LOUD"}}, "logging.level", "pattern"),
        (
            {"sources": {"pacs": {"ae_title": "P", "host": "h", "port": 0}}},
            "sources.pacs.port",
            "greater than or equal to 1",
        ),
        ({"sources": {"a b": {"ae_title": "P", "host": "h", "port": 1}}}, "sources", "a name"),
        (
            {"stability": {"confirm_timeout": 0}},
            "stability.confirm_timeout",
            "greater than 0",
        ),
        (
            {"stability": {"confirm_timeout": 301}},
            "stability.confirm_timeout",
            "less than or equal to 300",
        ),
        ({"http": {"timeout_header": 0}}, "http.timeout_header", "greater than 0"),
        ({"http": {"limit_concurrency": 1}}, "http.limit_concurrency", "greater than or equal"),
        ({"http": {"allowed_hosts": ["http://x"]}}, "http.allowed_hosts", "no scheme"),
        ({"http": {"max_stow_bytes": 100}}, "http.max_stow_bytes", "greater than or equal"),
        ({"http": {"max_stow_bytes": "lots"}}, "http.max_stow_bytes", "could not parse"),
    ],
)
def test_bad_values_name_file_key_and_expectation(data, key, words):
    with pytest.raises(ConfigError) as err:
        parse_config(data, source="node.yaml")
    assert err.value.source == "node.yaml"
    assert err.value.key == key
    assert words in err.value.message
    assert str(err.value).startswith(f"node.yaml: {key}: ")


def test_confirm_with_names_a_source():
    with pytest.raises(ConfigError, match="confirm_with names 'pacs', not in sources"):
        parse_config({"stability": {"confirm_with": ["pacs"]}}, source="node.yaml")
    config = parse_config(
        {
            "sources": {"pacs": {"ae_title": "PACS1", "host": "10.0.0.5", "port": 104}},
            "stability": {"confirm_with": ["pacs"]},
        },
        source="node.yaml",
    )
    assert config.sources["pacs"].ae_title == "PACS1"


def test_dicomweb_source_for_priors_but_not_for_confirm_with(tmp_path):
    from dicomnode.config.schema import DicomwebSource, SourceConfig

    sources = {
        "pacs": {"ae_title": "PACS1", "host": "10.0.0.5", "port": 104},
        "archive": {
            "url": "https://archive.example.org/dicom-web",
            "headers": {"Authorization": "Bearer abc"},
            "ca": "archive-ca.pem",
        },
    }
    route = {
        "name": "chest",
        "pipeline": "lung_nodule",
        "when": {"Modality": "CT"},
        "shadow": True,
        "priors": {"from": ["archive", "pacs"]},
    }
    config = parse_config({"sources": sources, "routes": [route]}, base=tmp_path)
    archive = config.sources["archive"]
    assert isinstance(archive, DicomwebSource)
    assert archive.headers == {"Authorization": "Bearer abc"}
    assert archive.ca == tmp_path / "archive-ca.pem"  # relative to the config file
    assert isinstance(config.sources["pacs"], SourceConfig)
    assert list(config.dicom_sources) == ["pacs"]
    with pytest.raises(ConfigError, match=r"confirm_with names 'archive', a DICOMweb source"):
        parse_config({"sources": sources, "stability": {"confirm_with": ["pacs", "archive"]}})
    with pytest.raises(ConfigError, match=r"sources\.archive\.url"):
        parse_config({"sources": {"archive": {"url": "ftp://archive"}}})


def test_values_take_environment_variables(tmp_path, monkeypatch):
    path = tmp_path / "dicomnode.yaml"
    path.write_text(
        "http: {host: 0.0.0.0, token: '${TEST_TOKEN}'}\n"
        "database: {url: 'postgresql+psycopg://node:${TEST_PW}@db/node'}\n"
        "node: {ae_title: '$${LITERAL}'}\n"
        "workers: {count: '${TEST_WORKERS}'}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TEST_TOKEN", "t" * 24)
    monkeypatch.setenv("TEST_PW", "s3cret")
    monkeypatch.setenv("TEST_WORKERS", "0")
    config, _ = load_config(path)
    assert config.http.token == "t" * 24
    assert config.database_url == "postgresql+psycopg://node:s3cret@db/node"
    assert config.node.ae_title == "${LITERAL}"
    assert config.workers.count == 0
    monkeypatch.delenv("TEST_PW")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "database.url"
    assert "environment variable TEST_PW is not set" in str(err.value)


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "etc" / "dicomnode.yaml"
    path.parent.mkdir()
    path.write_text(
        "data_dir: ../var\nstorage: {path: store}\nhttp: {tls: {cert: c.pem, key: /k.key}}\n"
    )
    config, _ = load_config(path)
    assert config.data_dir == tmp_path / "var"
    assert config.store_path == tmp_path / "etc" / "store"
    assert config.http.tls is not None
    assert config.http.tls.cert == tmp_path / "etc" / "c.pem"
    assert str(config.http.tls.key) == "/k.key"


def _cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_cli_config_error_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("node:\n  port: nope\n")
    out = _cli("check", "-c", str(path))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(path) in lines[0] and "node.port" in lines[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("node: [1,\n")
    out = _cli("check", "-c", str(broken))
    assert out.returncode == 2 and "line" in out.stderr and len(out.stderr.splitlines()) == 1
    out = _cli("check", "-c", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "not found" in out.stderr


def test_cli_init_then_check_then_status(tmp_path):
    out = _cli("init", str(tmp_path))
    assert out.returncode == 0, out.stderr
    config = tmp_path / "dicomnode.yaml"
    assert config.is_file()
    assert _cli("init", str(tmp_path)).returncode == 2  # refuses to overwrite
    # check before the node ever ran: the database will be created (ports made free here)
    text = config.read_text().replace("min_free: 2GB", "min_free: 1MB")
    text = text.replace("port: 11112", f"port: {free_port()}")
    config.write_text(text.replace("port: 8080 ", f"port: {free_port()} "))
    out = _cli("check", "-c", str(config))
    assert out.returncode == 0 and "state.db will be created" in out.stdout
    from dicomnode.store.db import open_database

    cfg, _ = load_config(config)
    open_database(cfg.database_url).dispose()
    out = _cli("check", "-c", str(config))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok") >= 4
    out = _cli("status", "-c", str(config))
    assert out.returncode == 0 and "no studies" in out.stdout


def test_example_configs_validate():
    from pathlib import Path

    from dicomnode.pipeline import PipelineRegistry
    from dicomnode.routing import compile_routes

    for path in sorted((Path(__file__).parents[2] / "config").glob("*.yaml")):
        config, _ = load_config(path)
        names = PipelineRegistry(config.class_paths).names()
        routes = compile_routes(
            config.routes, pipelines=names, destinations=set(config.destinations)
        )
        assert {r.pipeline for r in routes} <= set(names)
