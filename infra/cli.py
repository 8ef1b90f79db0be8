"""The one entry point: ``touchpath up | collector | processor | api | …``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

from touchpath.settings import ConfigError, Settings, load_settings


def _serve(app_factory: str, host: str, port: int, workers: int) -> int:
    import uvicorn

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="touchpath-metrics-")
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from infra.private import private_umask
    from infra.stack import run_up

    private_umask()  # the data dir and everything in it: owner-only from the first byte

    return run_up(ephemeral=args.ephemeral)


def cmd_collector(args: argparse.Namespace, settings: Settings) -> int:
    return _serve(
        "collector.app:create_app",
        settings.collector_host,
        settings.collector_port,
        args.workers or settings.collector_workers,
    )


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    return _serve(
        "api.app:create_app",
        settings.api_host,
        settings.api_port,
        args.workers or settings.api_workers,
    )


def cmd_processor(args: argparse.Namespace, settings: Settings) -> int:
    from processor.service import run_processor

    return run_processor(settings)


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from processor.dispatcher import run_dispatcher

    return run_dispatcher(settings)


def cmd_email_links(args: argparse.Namespace, settings: Settings) -> int:
    from touchpath.email_links import click_url, pixel_url

    base = args.base_url or settings.public_url
    if not settings.email_link_key or not base:
        print(
            "touchpath: set TOUCHPATH_EMAIL_LINK_KEY, and TOUCHPATH_PUBLIC_URL or --base-url",
            file=sys.stderr,
        )
        return 2
    key = settings.email_link_key.encode()
    for recipient in args.recipient:
        ids = {"recipient": recipient, "campaign": args.campaign, "message": args.message}
        print(f"{recipient}\tpixel\t{pixel_url(base, key, **ids)}")
        for url in args.url:
            print(f"{recipient}\tclick\t{click_url(base, key, url=url, **ids)}")
    return 0


def _email_links_parser(sub: argparse._SubParsersAction) -> None:
    links = sub.add_parser(
        "email-links", help="print signed open-pixel and click URLs for a campaign's recipients"
    )
    links.add_argument("--campaign", required=True, help="campaign name")
    links.add_argument("--message", required=True, help="message (email) id")
    links.add_argument("--recipient", action="append", required=True, help="repeatable")
    links.add_argument("--url", action="append", default=[], help="link target; repeatable")
    links.add_argument("--base-url", default="", help="default: TOUCHPATH_PUBLIC_URL")
    links.set_defaults(run=cmd_email_links)


def build_parser() -> argparse.ArgumentParser:
    """The ``touchpath`` argument parser."""
    parser = argparse.ArgumentParser(prog="touchpath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole stack on the embedded default")
    up.add_argument(
        "--ephemeral",
        action="store_true",
        help="memory storage for the broker, no AOF: nothing survives a restart",
    )
    up.set_defaults(run=cmd_up)
    for name, run in (("collector", cmd_collector), ("api", cmd_api)):
        service = sub.add_parser(name, help=f"run the {name} HTTP service")
        service.add_argument("--workers", type=int, default=0, help="uvicorn worker processes")
        service.set_defaults(run=run)
    processor = sub.add_parser("processor", help="run one processor (a consumer-group member)")
    processor.set_defaults(run=cmd_processor)
    webhooks = sub.add_parser("webhooks", help="run the stage-change webhook dispatcher")
    webhooks.set_defaults(run=cmd_webhooks)
    _email_links_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, validate configuration, run the command."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"touchpath: {exc}", file=sys.stderr)
        return 2
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
