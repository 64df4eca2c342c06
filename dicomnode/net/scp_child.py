"""One SCP process of several (``node.processes``): the child's side.

Started by :class:`~dicomnode.net.processes.ScpProcesses` as
``python -m dicomnode.net.scp_child --listen-fd N --slots-fd N --channel-fd N --parent PID``
with the node's config (JSON) on stdin. It runs a :class:`~dicomnode.net.scp.StorageSCP` on
the inherited listening socket with its own database connections, reports to the parent over
its channel, reaps its own spool files, and stops on SIGTERM or when the parent is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence

from dicomnode.config.schema import Config, NodeConfig
from dicomnode.logs import setup_logging
from dicomnode.net.processes import Channel, Message, spool_prefix
from dicomnode.net.receive import ScpObserver
from dicomnode.net.scp import Delivery, StorageSCP, configure_pynetdicom
from dicomnode.net.slots import AssociationSlots
from dicomnode.startup import first_line
from dicomnode.store.audit import AuditEntry, set_sink
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from dicomnode.store.stability import SweepResult

__all__ = ["ChannelObserver", "main"]

log = logging.getLogger(__name__)

#: Seconds between reaps of this process's abandoned spool files.
REAP_EVERY = 5.0


class ChannelObserver(ScpObserver):
    """Forwards the SCP's events to the parent (its metrics)."""

    def __init__(self, channel: Channel):
        self.channel = channel

    def association(self, *, accepted: bool) -> None:
        self.channel.send(Message.OBSERVED, event="association", accepted=accepted)

    def stored(self, *, outcome: str, size: int) -> None:
        self.channel.send(Message.OBSERVED, event="stored", outcome=outcome, size=size)

    def store_failed(self, *, status: int) -> None:
        self.channel.send(Message.OBSERVED, event="store_failed", status=status)

    def security_alert(self) -> None:
        self.channel.send(Message.OBSERVED, event="security_alert")


def _die_with_parent(parent: int) -> bool:
    """Be killed when the parent's thread that started us ends; False if it is gone already."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    return os.getppid() == parent


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dicomnode.net.scp_child")
    for name in ("--listen-fd", "--slots-fd", "--channel-fd", "--parent"):
        parser.add_argument(name, type=int, required=True)
    parser.add_argument("--resume", action="store_true", help="resume waiting MPPS steps")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one SCP process until SIGTERM or the parent's end; the exit status."""
    args = _parse(argv)
    if not _die_with_parent(args.parent):
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGHUP):  # the parent decides (a terminal's ^C)
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    config = Config.model_validate_json(sys.stdin.read())
    setup_logging(config.logging)
    configure_pynetdicom(log_identifiers=config.logging.log_identifiers)
    channel = Channel(socket.socket(fileno=args.channel_fd))
    try:
        scp = _start(config, args, channel)
    except Exception as exc:
        log.debug("SCP process start failure", exc_info=True)
        channel.send(Message.FAILED, error=first_line(str(exc)) or type(exc).__name__)
        return 2
    channel.send(Message.READY, pid=os.getpid())
    threading.Thread(
        target=_follow, args=(channel, scp, stop), name="dicomnode-parent", daemon=True
    ).start()
    while not stop.wait(REAP_EVERY):
        try:
            scp.reap_spool()
        except Exception:  # tried again next time
            log.exception("spool reaper failed")
    scp.stop()
    scp.store.db.dispose()
    return 0


def _start(config: Config, args: argparse.Namespace, channel: Channel) -> StorageSCP:
    db = open_database(config.database_url, migrate=False)
    store = Store(config.store_path, db, min_free=int(config.storage.min_free))
    if config.audit.syslog is not None:  # the parent's forwarder sends them

        def audited(entry: AuditEntry) -> None:
            channel.send(
                Message.AUDITED,
                at=entry.at.isoformat(),
                kind=entry.kind,
                subject=entry.subject,
                peer=entry.peer,
                detail=entry.detail,
            )

        set_sink(audited)

    def signalled(done: SweepResult) -> None:
        if done.series or done.studies:
            channel.send(Message.SIGNALLED, series=done.series, studies=done.studies)

    def released(delivery: Delivery) -> None:
        channel.send(
            Message.RELEASED,
            peer=delivery.peer,
            studies=sorted(delivery.studies),
            series=sorted(delivery.series),
        )

    scp = StorageSCP(
        config.node,
        store,
        observer=ChannelObserver(channel),
        sources=config.dicom_sources,
        on_signal=signalled,
        on_released=released if config.stability.confirm_with else None,
        slots=AssociationSlots(args.slots_fd),
        listening=socket.socket(fileno=args.listen_fd),
        spool_prefix=spool_prefix(os.getpid()),
    )
    scp.start(resume_mpps=args.resume)
    return scp


def _follow(channel: Channel, scp: StorageSCP, stop: threading.Event) -> None:
    """Apply what the parent sends; stop when it is gone."""
    for message in channel:
        if message.get("message") == Message.NODE_CONFIG.value:
            scp.config = NodeConfig.model_validate(message["config"])
    stop.set()


if __name__ == "__main__":
    sys.exit(main())
