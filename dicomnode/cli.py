"""The ``dicomnode`` command line (see DESIGN.md section 3)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dicomnode import __version__
from dicomnode.config import Config, default_config_text, load_config
from dicomnode.config.schema import DicomwebSource
from dicomnode.errors import ConfigError, DicomNodeError
from dicomnode.terminal import printable

if TYPE_CHECKING:
    from dicomnode.store.db import Database

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"dicomnode: error: {message}\n")


#: The most rows a listing asks for (beyond it the database's integers overflow).
MAX_ROWS = 1_000_000


def _count(text: str) -> int:
    """A number of rows: a whole number from 0 to :data:`MAX_ROWS`."""
    if (
        not text.isascii()
        or not text.isdigit()
        or len(text.lstrip("0")) > 7
        or int(text) > MAX_ROWS
    ):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to {MAX_ROWS}")
    return int(text)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dicomnode", description="A DICOM node that analyses studies.")
    parser.add_argument("--version", action="version", version=f"dicomnode {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "-c", "--config", help="config file (default: $DICOMNODE_CONFIG, ./dicomnode.yaml)"
        )
        return p

    with_config(sub.add_parser("serve", help="run the node"))
    init = sub.add_parser("init", help="write a commented default config")
    init.add_argument("dir", nargs="?", default=".", help="directory to write dicomnode.yaml to")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    with_config(sub.add_parser("check", help="validate config, database and store"))
    status = with_config(sub.add_parser("status", help="studies and series and their states"))
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--audit", type=_count, default=0, metavar="N", help="also the last N audit events"
    )
    with_config(sub.add_parser("worker", help="run workers only (no DICOM listener)"))
    jobs = with_config(sub.add_parser("jobs", help="jobs and their deliveries"))
    jobs.add_argument(
        "--state",
        choices=["queued", "running", "succeeded", "failed", "dead", "refused"],
        help="only jobs in this state",
    )
    jobs.add_argument("--json", action="store_true", help="machine-readable output")
    retry = with_config(sub.add_parser("retry", help="queue a job and its dead deliveries again"))
    retry.add_argument("job_id", metavar="JOB_ID")
    send_now = with_config(
        sub.add_parser("send-now", help="pending deliveries skip their backoff: send them now")
    )
    send_now.add_argument("--destination", metavar="NAME", help="only deliveries to NAME")
    route = sub.add_parser("route", help="inspect routing")
    route_sub = route.add_subparsers(dest="route_command", required=True, parser_class=_Parser)
    explain = with_config(
        route_sub.add_parser("explain", help="which routes match the series under PATH, and why")
    )
    explain.add_argument("path", metavar="PATH", help="a DICOM file or a folder tree")
    explain.add_argument("--json", action="store_true", help="machine-readable output")
    explain.add_argument("--calling-ae", help="assume this sender AE title (calling_ae rules)")
    run = with_config(sub.add_parser("run", help="run one pipeline on files, write its results"))
    run.add_argument("pipeline", metavar="PIPELINE", help="pipeline name, e.g. lung_nodule")
    run.add_argument("path", metavar="PATH", help="a DICOM file or a folder tree")
    run.add_argument("--out", required=True, metavar="DIR", help="where result files go")
    run.add_argument("--device", default=None, help="auto, cpu, cuda (default: workers.device)")
    run.add_argument(
        "--outputs", default=None, help="comma-separated: sr,seg,summary (default: config)"
    )
    demo = sub.add_parser(
        "demo", help="a node on built-in defaults analyses generated CT/MR/MG studies"
    )
    demo.add_argument(
        "--out", metavar="DIR", help="result folder (default ./dicomnode-demo-results/<time>)"
    )
    demo.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    demo.add_argument(
        "--no-orthanc",
        action="store_true",
        help="use the built-in receiver even if Orthanc is installed",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="wait at most S seconds for results",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicomnode`` console script; returns the exit status."""
    from dicomnode.startup import StartupError, first_line, private_umask

    private_umask()  # files and folders the node writes are its user's only, whatever the caller's
    args = _build_parser().parse_args(argv)
    try:
        if args.command == "init":
            return _init(Path(args.dir), force=args.force)
        if args.command == "demo":
            return _demo(args)
        config, source = load_config(args.config)
        if args.command == "serve":
            return _serve(config, source)
        if args.command == "check":
            return _check(config, source)
        if args.command == "status":
            return _status(config, as_json=args.json, audit=args.audit)
        if args.command == "worker":
            return _serve(config, source, worker_only=True)
        if args.command == "jobs":
            return _jobs(config, state=args.state, as_json=args.json)
        if args.command == "retry":
            return _retry(config, args.job_id)
        if args.command == "send-now":
            return _send_now(config, args.destination)
        if args.command == "run":
            return _run(config, args)
        if args.command == "route":
            return _explain(config, Path(args.path), as_json=args.json, calling_ae=args.calling_ae)
    except ConfigError as exc:
        print(f"dicomnode: config error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StartupError as exc:
        print(f"dicomnode: error: {first_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except DicomNodeError as exc:
        print(f"dicomnode: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


def _run(config: Config, args: argparse.Namespace) -> int:
    from dicomnode.logs import setup_logging
    from dicomnode.pipeline.execute import choose_outputs
    from dicomnode.pipeline.registry import PipelineRegistry, PipelineUnavailable
    from dicomnode.pipeline.runner import run_on_files

    path = Path(args.path)
    if not path.exists():
        raise DicomNodeError(f"{path}: no such file or directory")
    setup_logging(config.logging)  # libraries' warnings too: JSON on stderr, redacted
    section = config.pipelines.get(args.pipeline)
    options = dict(section.options) if section else {}
    outputs = section.chosen_outputs if section else None
    if args.outputs:
        try:
            outputs = list(choose_outputs(args.outputs.split(","), None, None))
        except ValueError as exc:
            raise DicomNodeError(f"--outputs: {exc}") from None
    try:
        report = run_on_files(
            args.pipeline,
            path,
            Path(args.out),
            options=options,
            device=args.device or config.workers.device.value,
            outputs=outputs,
            uid_root=config.node.uid_root,
            registry=PipelineRegistry(config.class_paths),
        )
    except PipelineUnavailable as exc:
        raise DicomNodeError(str(exc)) from None
    print(report.summary())
    if report.failed:
        return EXIT_FAILED
    return EXIT_FAILED if report.jobs and len(report.refused) == len(report.jobs) else 0


def _demo(args: argparse.Namespace) -> int:
    from dicomnode.demo import DemoOptions, run_demo

    try:
        options = DemoOptions(
            out=Path(args.out) if args.out else None,
            keep=args.keep,
            orthanc=not args.no_orthanc,
            timeout=args.timeout,
        )
    except ValueError as exc:
        print(f"dicomnode: error: demo: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_demo(options)


def _init(directory: Path, *, force: bool) -> int:
    """Write the default config with mode 0600 (it will hold the HTTP token); never through a
    symbolic link, neither the folder nor the file."""
    target = directory / "dicomnode.yaml"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        return _init_error(directory, exc)
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(target.name, flags, 0o600, dir_fd=dir_fd)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and not target.is_symlink():
            print(f"dicomnode: error: {target} exists (use --force to overwrite)", file=sys.stderr)
            return EXIT_USAGE
        return _init_error(target, exc)
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fd, 0o600)  # an overwritten file keeps its old mode otherwise
        fh.write(default_config_text())
    print(f"wrote {target}")
    return 0


def _init_error(path: Path, exc: OSError) -> int:
    if path.is_symlink():
        reason = "is a symbolic link (init does not follow links; give the real path)"
    else:
        reason = exc.strerror or str(exc)
    print(f"dicomnode: error: {path}: {reason}", file=sys.stderr)
    return EXIT_USAGE


def _serve(config: Config, source: str, *, worker_only: bool = False) -> int:
    from dicomnode.app import Node, Role
    from dicomnode.config import DEFAULTS
    from dicomnode.logs import setup_logging

    setup_logging(config.logging)
    config_file = None if source == DEFAULTS else Path(source).resolve()
    role = Role.WORKER if worker_only else Role.SERVE
    Node(config, role, config_file=config_file).serve_forever()
    return 0


def _open_current(config: Config) -> Database:
    """The state database, which must be at the current schema (read-only commands)."""
    from dicomnode.store.db import open_database

    db = open_database(config.database_url, migrate=False)
    if not db.schema_is_current():
        db.dispose()
        raise DicomNodeError("the database has no current schema; start the node once")
    return db


def _jobs(config: Config, *, state: str | None, as_json: bool) -> int:
    from dicomnode.jobs.report import job_rows, render_jobs

    db = _open_current(config)
    try:
        rows = job_rows(db, state=state)
    finally:
        db.dispose()
    print(json.dumps(rows, indent=2) if as_json else render_jobs(rows), end="\n" if as_json else "")
    return 0


def _retry(config: Config, job_id: str) -> int:
    from dicomnode.jobs.errors import InvalidJobId
    from dicomnode.jobs.retry import checked_job_id, retry

    try:
        number = checked_job_id(job_id)
    except InvalidJobId as exc:
        print(f"dicomnode: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    db = _open_current(config)
    try:
        print(retry(db, number))
    finally:
        db.dispose()
    return 0


def _send_now(config: Config, destination: str | None) -> int:
    from dicomnode.export.expedite import send_now

    if destination is not None and destination not in config.destinations:
        known = ", ".join(sorted(config.destinations)) or "none configured"
        print(f"dicomnode: error: no destination {destination!r} ({known})", file=sys.stderr)
        return EXIT_USAGE
    db = _open_current(config)
    try:
        count = send_now(db, destination=destination, by="dicomnode send-now")
    finally:
        db.dispose()
    where = f" to {destination}" if destination else ""
    poll = config.export.poll_seconds
    print(f"{count} pending deliveries{where} due now: a running node sends them within {poll:g} s")
    return 0


def _explain(config: Config, path: Path, *, as_json: bool, calling_ae: str | None) -> int:
    from dicomnode.pipeline.registry import PipelineRegistry
    from dicomnode.routing import compile_routes, evaluate, render_json, render_table, scan

    routes = compile_routes(
        config.routes,
        pipelines=PipelineRegistry(config.class_paths).names(),
        destinations=set(config.destinations),
    )
    try:
        found = scan(path, calling_ae=calling_ae)
    except FileNotFoundError:
        print(f"dicomnode: error: {path}: no such file or folder", file=sys.stderr)
        return EXIT_USAGE
    rows = evaluate(found.series, routes)
    render = render_json if as_json else render_table
    sys.stdout.write(render(rows, skipped=len(found.skipped)))
    return 0


def _check(config: Config, source: str) -> int:
    from dicomnode.startup import creatable, first_line, shown_url, sqlite_file
    from dicomnode.store import files
    from dicomnode.store.db import open_database
    from dicomnode.store.ingest import Store
    from dicomnode.store.recovery import verify

    failures = 0

    def report(ok: bool, what: str, detail: str) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'}  {what}: {detail}")

    report(True, "config", source)
    if config.node.tls is not None:
        from dicomnode.net.tls import server_context

        try:
            server_context(config.node.tls)
            report(True, "tls", f"cert {config.node.tls.cert}, CA {config.node.tls.ca}")
        except ConfigError as exc:
            report(False, "tls", str(exc))
    _check_ports(config, report)
    _check_folder(config.data_dir, "data dir", report)
    db_file = sqlite_file(config.database_url)
    current = False
    if db_file is not None and not db_file.exists():
        problem = creatable(db_file)
        report(problem is None, "database", f"{db_file} {problem or 'will be created'}")
    else:
        try:
            db = open_database(config.database_url, migrate=False)
            current = db.schema_is_current()
            detail = "schema current" if current else "schema not current (serve migrates it)"
            report(current, "database", f"{db.engine.url.render_as_string()} {detail}")
        except Exception as exc:
            report(False, "database", f"{shown_url(config.database_url)}: {first_line(str(exc))}")
            return EXIT_FAILED
    root = config.store_path
    if not _check_folder(root, "store", report):
        return EXIT_FAILED
    existing = root  # a store still to be created gets the space of its nearest ancestor
    while not existing.exists():
        existing = existing.parent
    if existing.is_dir():
        free = files.free_bytes(existing)
        min_free = int(config.storage.min_free)
        report(
            free >= min_free,
            "store space",
            f"{free // 10**6} MB free (min_free {min_free // 10**6} MB)",
        )
    if current:
        found = verify(Store(root, db, min_free=0))
        report(
            not found.missing_files,
            "store index",
            f"{len(found.missing_files)} indexed instances without a file, "
            f"{len(found.unindexed_files)} files not indexed (indexed at next start)",
        )
    _check_jobs(config, report)
    _check_sources(config, report)
    return EXIT_FAILED if failures else 0


_Report = Callable[[bool, str, str], None]


def _check_ports(config: Config, report: _Report) -> None:
    """The DICOM and HTTP ports are free (FAIL when busy: another program, or the node)."""
    from dicomnode.startup import port_problem

    sockets = [("DICOM", config.node.host, config.node.port)]
    if config.http.enabled:
        sockets.append(("HTTP", config.http.host, config.http.port))
    for what, host, port in sockets:
        problem = None if port == 0 else port_problem(host, port)
        detail = f"{host}:{port} {'free' if port else '(any free port)'}"
        if problem is not None:
            detail = f"{host}:{port} {problem} (another program, or this node already running)"
        report(problem is None, f"{what} port", detail)


def _check_folder(path: Path, what: str, report: _Report) -> bool:
    """``path`` can be written to, or created; reports it and returns whether it can."""
    from dicomnode.startup import creatable, probe_writable

    if not path.exists():
        problem = creatable(path)
        report(problem is None, what, f"{path} {problem or 'will be created'}")
        return problem is None
    try:
        probe_writable(path)
    except OSError as exc:
        report(False, what, f"{path} is not writable: {exc.strerror or exc}")
        return False
    report(True, what, f"{path} writable")
    return True


def _check_jobs(config: Config, report: _Report) -> None:
    """Pipelines used by routes load; DICOM destinations answer C-ECHO."""
    from dicomnode.config.schema import DicomDestination
    from dicomnode.export.senders import echo
    from dicomnode.pipeline.registry import PipelineRegistry

    used = {route.pipeline for route in config.routes}
    for status in PipelineRegistry(config.class_paths).status():
        if status.name in used:
            report(status.available, f"pipeline {status.name}", status.reason or "loads")
    for name, destination in config.destinations.items():
        if isinstance(destination, DicomDestination):
            where = f"{destination.ae_title}@{destination.host}:{destination.port}"
            problem = echo(destination, calling_ae=config.node.ae_title)
            report(problem is None, f"destination {name}", f"{where} {problem or 'answers C-ECHO'}")
        else:
            report(True, f"destination {name}", f"{destination.url} (STOW-RS, not probed)")


def _check_sources(config: Config, report: _Report) -> None:
    """Sources answer C-ECHO: one line each. A source that does not answer is a WARN line,
    not a failure (the node runs without it: completion falls back to the stability timers);
    a TLS file that cannot be loaded is a config error, a FAIL."""
    from dicomnode.net.peer import echo, tls_args

    confirming = set(config.stability.confirm_with)
    for name, source in config.sources.items():
        what = f"source {name}"
        if isinstance(source, DicomwebSource):
            _check_dicomweb_source(what, source, report)
            continue
        where = f"{source.ae_title}@{source.host}:{source.port}"
        use = " (confirm_with)" if name in confirming else ""
        try:
            tls_args(source)
        except ConfigError as exc:
            report(False, what, f"{where} {exc}")
            continue
        problem = echo(source, calling_ae=config.node.ae_title)
        if problem is None:
            report(True, what, f"{where} answers C-ECHO{use}")
        else:
            print(f"WARN  {what}: {where} {problem}{use}; completion waits for the timers")


def _check_dicomweb_source(what: str, source: DicomwebSource, report: _Report) -> None:
    """A DICOMweb source answers a QIDO-RS ``GET /studies?limit=1``: OK, else a WARN line
    (priors come without it); a ``ca`` file that is missing is a FAIL."""
    from dicomnode.net.dicomweb import probe, source_label

    where = source_label(source)
    if source.ca is not None and not source.ca.is_file():
        report(False, what, f"{where} ca {source.ca}: no such file")
        return
    problem = probe(source, timeout=10.0)
    if problem is None:
        report(True, what, f"{where} answers QIDO-RS")
    else:
        print(f"WARN  {what}: {where} {problem}; priors come without it")


def _status(config: Config, *, as_json: bool, audit: int = 0) -> int:
    from dicomnode.store.report import audit_rows, series_rows

    db = _open_current(config)
    try:
        items = series_rows(db)
        events = audit_rows(db, limit=audit) if audit > 0 else []
    finally:
        db.dispose()
    if as_json:
        print(json.dumps({"series": items, "audit": events} if audit else items, indent=2))
        return 0
    if not items:
        print("no studies")
    study_w = max([len("STUDY"), *(len(printable(it["study_uid"])) for it in items)])
    series_w = max([len("SERIES"), *(len(printable(it["series_uid"])) for it in items)])
    if items:
        print(
            f"{'STUDY':<{study_w}} {'SERIES':<{series_w}} {'MOD':<4} {'#':>4} {'INST':>5} "
            f"{'STATE':<9} DESCRIPTION"
        )
    for it in items:  # full UIDs: two series never look the same
        print(
            f"{printable(it['study_uid']):<{study_w}} {printable(it['series_uid']):<{series_w}} "
            f"{printable(it['modality']):<4} {it['series_number'] or '':>4} {it['instances']:>5} "
            f"{it['routing'] or it['series_state']:<9} {printable(it['description'])}"
        )
    if events:
        subject_w = max([len("SUBJECT"), *(len(printable(ev["subject"])) for ev in events)])
        print(f"\n{'TIME':<26} {'EVENT':<22} {'SUBJECT':<{subject_w}} {'PEER':<24} DETAIL")
        for ev in events:
            print(
                f"{ev['at']:<26} {ev['kind']:<22} {printable(ev['subject']):<{subject_w}} "
                f"{printable(ev['peer'])[:24]:<24} {printable(ev['detail'])}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
