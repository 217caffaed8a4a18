"""Command line: ``python -m apps.clusters.agent --portal URL --node-id ID --token-file PATH``.

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

from .client import PortalClient, PortalRejected
from .sampler import Sampler
from .sources import GpuSource, NvmlSource, NvmlUnavailable, ReplaySource, record

TOKEN_ENV = "PAVED_NODE_TOKEN"  # noqa: S105 - the variable's name, not a token
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
    args = parser.parse_args(argv)
    if args.interval < 0 or args.ticks < 1:
        parser.error("--interval must be >= 0 and --ticks >= 1")
    if args.record is None:
        missing = [flag for flag, value in (("--portal", args.portal), ("--node-id", args.node_id)) if not value]
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        token = None if args.record else read_token(args.token_file)
        client = PortalClient(args.portal, token, timeout=args.timeout) if token else None
        source = open_source(args)
    except NvmlUnavailable as exc:
        print(f"NVML not available: {exc} ({NVML_HINT})", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"agent cannot start: {exc}", file=sys.stderr)
        return 2

    try:
        if client is None:
            return record_to_file(source, args)
        stop = threading.Event()

        def request_stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        sampler = Sampler(source, client, args.node_id, interval=args.interval)
        try:
            sampler.run(stop, ticks=1 if args.once else None)
            if sampler.buffer:
                sampler.flush()
        except PortalRejected as exc:
            logger.error("portal refused this node's token (%s): check --token-file / %s", exc, TOKEN_ENV)
            return 1
        if sampler.buffer:
            logger.error("%d batches could not be delivered", len(sampler.buffer))
            return 1 if args.once else 0
        return 0
    finally:
        source.close()


if __name__ == "__main__":
    sys.exit(main())
