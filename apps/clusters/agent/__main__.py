"""Command line: ``python -m apps.clusters.agent --portal URL --node-id ID --token-file PATH [--run-jobs]``.

With ``--run-jobs`` the agent also runs the training jobs the portal schedules on its cluster (``jobs.py``: in a
container where docker or podman is installed, else, or with PAVED_AGENT_DEV_MODE=1, as plain processes), in a
second thread beside the sampling loop.

On a node Paved launched, the user data runs it with ``--register --bootstrap-token-file F --token-file T``:
the first start trades the cluster's bootstrap secret for this node's token and keeps it in T (mode 600); later
starts (a reboot, a stopped cluster started again) find T and go straight to sampling. The node id defaults to
the EC2 instance id from the metadata service.

Exit codes: 0 done (or stopped with Ctrl-C / SIGTERM after a last flush), 1 the portal refused or could not take
the data, 2 bad usage or nothing to read (no NVML and no ``--replay``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from types import FrameType

from .client import PortalClient, PortalRejected, PortalUnavailable, register
from .identity import ec2_instance_id
from .jobs import JobClient, JobWorker
from .sampler import Sampler
from .sources import GpuSource, NvmlSource, NvmlUnavailable, ReplaySource, record

TOKEN_ENV = "PAVED_NODE_TOKEN"  # noqa: S105 - the variable's name, not a token
REGISTER_RETRY_SECONDS = 5.0
REGISTER_ATTEMPTS = 60  # five minutes: the portal records a launch within seconds of EC2 answering
NVML_HINT = "is the NVIDIA driver installed? use --replay FILE to send recorded samples"

logger = logging.getLogger("paved.agent")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m apps.clusters.agent", description="Paved GPU telemetry agent")
    parser.add_argument("--portal", help="portal base URL, e.g. https://paved.example.com")
    parser.add_argument("--node-id", help="this node's id as registered in the portal")
    parser.add_argument("--token-file", help=f"file holding the node token (default: ${TOKEN_ENV})")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the portal (default 10)")
    parser.add_argument("--replay", metavar="FILE", help="send a recorded JSON-lines file (looping) instead of NVML")
    parser.add_argument("--once", action="store_true", help="sample and send once, then exit")
    parser.add_argument("--record", metavar="FILE", help="record readings to FILE instead of sending them")
    parser.add_argument("--ticks", type=int, default=60, help="ticks to record with --record (default 60)")
    parser.add_argument(
        "--register", action="store_true", help="get a node token with the bootstrap secret unless --token-file has one"
    )
    parser.add_argument("--bootstrap-token-file", help="file holding the cluster's bootstrap secret (with --register)")
    parser.add_argument("--run-jobs", action="store_true", help="also claim and run this cluster's training jobs")
    parser.add_argument("--job-poll", type=float, default=1.0, help="seconds between job claims (default 1)")
    args = parser.parse_args(argv)
    if args.interval < 0 or args.ticks < 1 or args.job_poll <= 0:
        parser.error("--interval must be >= 0, --ticks >= 1 and --job-poll > 0")
    if args.run_jobs and (args.once or args.record):
        parser.error("--run-jobs runs until stopped: it cannot go with --once or --record")
    if args.register and not (args.token_file and args.bootstrap_token_file):
        parser.error("--register needs --bootstrap-token-file (to read) and --token-file (to keep the node token)")
    if args.record is None:
        required = [("--portal", args.portal)] + ([] if args.register else [("--node-id", args.node_id)])
        missing = [flag for flag, value in required if not value]
        if missing:
            parser.error(f"{' and '.join(missing)} required (or use --record FILE)")
    return args


def read_token(token_file: str | None) -> str:
    if token_file:
        with open(token_file, encoding="utf-8") as handle:
            token = handle.read().strip()
        if not token:
            raise ValueError(f"token file {token_file} is empty")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise ValueError(f"no node token: pass --token-file PATH or set {TOKEN_ENV}")
    return token


def register_node(args: argparse.Namespace, stop: threading.Event) -> tuple[str, str]:
    """(node id, node token): the token kept in --token-file, or a new one from the portal, saved there first."""
    node_id = args.node_id or ec2_instance_id()
    if os.path.exists(args.token_file) and os.path.getsize(args.token_file) > 0:
        return node_id, read_token(args.token_file)
    with open(args.bootstrap_token_file, encoding="utf-8") as handle:
        secret = handle.read().strip()
    if not secret:
        raise ValueError(f"bootstrap token file {args.bootstrap_token_file} is empty")
    for attempt in range(1, REGISTER_ATTEMPTS + 1):
        try:
            token = register(args.portal, secret, node_id, timeout=args.timeout)
            break
        except PortalUnavailable as exc:
            if attempt == REGISTER_ATTEMPTS or stop.wait(REGISTER_RETRY_SECONDS):
                raise
            logger.info("registration not possible yet (%s); retrying", exc)
    descriptor = os.open(args.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    logger.info("registered node %s; its token is in %s", node_id, args.token_file)
    return node_id, token


def open_source(args: argparse.Namespace) -> GpuSource:
    if args.replay:
        return ReplaySource(args.replay, loop=True)
    return NvmlSource()


def record_to_file(source: GpuSource, args: argparse.Namespace) -> int:
    try:
        written = record(source, args.record, args.ticks, args.interval)
    except KeyboardInterrupt:
        logger.info("recording stopped; the ticks finished so far are in %s", args.record)
        return 0
    logger.info("recorded %d ticks to %s", written, args.record)
    return 0


def start_jobs(args: argparse.Namespace, token: str, stop: threading.Event) -> threading.Thread:
    worker = JobWorker(JobClient(args.portal, token, timeout=args.timeout), poll_interval=args.job_poll)
    thread = threading.Thread(target=worker.run, args=(stop,), name="paved-jobs")
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        source = open_source(args)
    except NvmlUnavailable as exc:
        print(f"NVML not available: {exc} ({NVML_HINT})", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"agent cannot start: {exc}", file=sys.stderr)
        return 2

    try:
        if args.record:
            return record_to_file(source, args)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            if args.register:
                node_id, token = register_node(args, stop)
            else:
                node_id, token = args.node_id, read_token(args.token_file)
        except PortalRejected as exc:
            print(f"agent cannot register: the portal refused ({exc})", file=sys.stderr)
            return 1
        except (OSError, ValueError, PortalUnavailable) as exc:
            print(f"agent cannot start: {exc}", file=sys.stderr)
            return 2
        client = PortalClient(args.portal, token, timeout=args.timeout)
        sampler = Sampler(source, client, node_id, interval=args.interval)
        worker = start_jobs(args, token, stop) if args.run_jobs else None
        try:
            sampler.run(stop, ticks=1 if args.once else None)
            if sampler.buffer:
                sampler.flush()
        except PortalRejected as exc:
            logger.error("portal refused this node's token (%s): check --token-file / %s", exc, TOKEN_ENV)
            return 1
        finally:
            stop.set()  # a running job is stopped with the agent
            if worker is not None:
                worker.join()
        if sampler.buffer:
            logger.error("%d batches could not be delivered", len(sampler.buffer))
            return 1 if args.once else 0
        return 0
    finally:
        source.close()


if __name__ == "__main__":
    sys.exit(main())
