"""The one entry point: ``touchpath up | collector | processor | api | webhooks | check | …``."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence

from infra.config_check import check, configured_variables, unknown_variable_warnings
from infra.logs import package_version
from touchpath.settings import ConfigError, Settings, load_settings


def _serve(app_factory: str, host: str, port: int, workers: int, settings: Settings) -> int:
    import uvicorn

    from infra.http_guard import GuardedHttpTools

    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="touchpath-metrics-")
    proxies = list(settings.trusted_proxies)
    uvicorn.run(
        app_factory,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=GuardedHttpTools,  # head and body deadlines against slow clients
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.http_keep_alive_s,
        proxy_headers=bool(proxies),  # X-Forwarded-For/-Proto only from trusted proxies
        forwarded_allow_ips=proxies or None,
    )
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from infra.private import private_umask
    from launcher.stack import run_up

    private_umask()  # the data dir and everything in it: owner-only from the first byte

    return run_up(ephemeral=args.ephemeral)


def cmd_collector(args: argparse.Namespace, settings: Settings) -> int:
    return _serve(
        "collector.app:create_app",
        settings.collector_host,
        settings.collector_port,
        args.workers or settings.collector_workers,
        settings,
    )


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    return _serve(
        "api.app:create_app",
        settings.api_host,
        settings.api_port,
        args.workers or settings.api_workers,
        settings,
    )


def cmd_processor(args: argparse.Namespace, settings: Settings) -> int:
    from processor.service import run_processor

    return run_processor(settings)


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    from dispatcher.service import run_dispatcher

    return run_dispatcher(settings)


def cmd_reevaluate(args: argparse.Namespace, settings: Settings) -> int:
    from processor.reevaluation import run_by_hand

    return run_by_hand(settings, silent=args.silent, everyone=args.all)


def cmd_check(unknown: list[str]) -> int:
    """``touchpath check``: what holds on stdout, one line per problem on stderr; 1 if any."""
    from launcher.stack import redis_configured

    fine: list[str] = []
    try:
        settings = load_settings()
    except ConfigError as exc:
        problems = exc.problems
    else:
        fine, problems = check(settings, redis_configured(settings))
    problems = [line.removeprefix("warning: ") for line in unknown] + problems
    for line in fine:
        print(line)
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


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


DESCRIPTION = """\
touchpath turns a Segment-compatible event stream into one journey and one current
stage per customer. Every setting is a TOUCHPATH_* environment variable (or a line
in .env); see the README's configuration table."""

COMMANDS: dict[str, tuple[str, str]] = {
    "up": (
        "start the whole stack on this machine and supervise it",
        "Starts a broker (unless TOUCHPATH_KAFKA_BOOTSTRAP is set) and a Redis with AOF in\n"
        "the data dir (unless TOUCHPATH_REDIS_URL is set), then the collector, api,\n"
        "processor and webhook dispatcher; prints their addresses, credentials, the log\n"
        "dir and 'ready'. A child that dies is restarted.\n"
        "Variables: TOUCHPATH_DATA_DIR, TOUCHPATH_COLLECTOR_PORT, TOUCHPATH_API_PORT,\n"
        "TOUCHPATH_KAFKA_BOOTSTRAP, TOUCHPATH_REDIS_URL, TOUCHPATH_UP_MAX_CRASHES.",
    ),
    "collector": (
        "run the collector: the Segment-compatible HTTP ingestion service",
        "Variables: TOUCHPATH_WRITE_KEYS (required: without keys every request is a 401),\n"
        "TOUCHPATH_KAFKA_BOOTSTRAP, TOUCHPATH_COLLECTOR_HOST, TOUCHPATH_COLLECTOR_PORT,\n"
        "TOUCHPATH_COLLECTOR_WORKERS.",
    ),
    "api": (
        "run the read API: stages, journeys, segments, subscriptions, stream",
        "Variables: TOUCHPATH_API_TOKENS, TOUCHPATH_REDIS_URL, TOUCHPATH_API_HOST,\n"
        "TOUCHPATH_API_PORT, TOUCHPATH_API_WORKERS, TOUCHPATH_RULES_FILE.",
    ),
    "processor": (
        "run one processor: a Kafka consumer-group member writing journeys to Redis",
        "Variables: TOUCHPATH_KAFKA_BOOTSTRAP, TOUCHPATH_REDIS_URL, TOUCHPATH_CONSUMER_GROUP,\n"
        "TOUCHPATH_RULES_FILE, TOUCHPATH_PROCESSOR_METRICS_PORT.",
    ),
    "webhooks": (
        "run the stage-change webhook dispatcher",
        "Variables: TOUCHPATH_REDIS_URL, TOUCHPATH_WEBHOOK_TIMEOUT_S,\n"
        "TOUCHPATH_WEBHOOK_MAX_ATTEMPTS, TOUCHPATH_WEBHOOKS_METRICS_PORT.",
    ),
    "reevaluate": (
        "re-evaluate every customer under the rules file now, with progress, then exit",
        "What a processor does in the background when it starts with changed rules\n"
        "(TOUCHPATH_REEVALUATE=manual leaves it to this command): every cluster is resolved\n"
        "again, anchors rewritten from their timelines, corrections announced (unless\n"
        "--silent). Resumes an interrupted re-evaluation; --all also when none is due.\n"
        "Variables: TOUCHPATH_REDIS_URL, TOUCHPATH_REDIS_PREFIX, TOUCHPATH_RULES_FILE.",
    ),
    "check": (
        "validate the configuration, the rules file and the connections, then exit",
        "Exits 0 when everything holds, 1 with one line per problem otherwise. Checks\n"
        "every TOUCHPATH_* variable, TOUCHPATH_RULES_FILE (or the built-in rules), Kafka\n"
        "at TOUCHPATH_KAFKA_BOOTSTRAP and Redis at TOUCHPATH_REDIS_URL when they are set.",
    ),
}


def _command(sub: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    summary, details = COMMANDS[name]
    return sub.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}.\n\n{details}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``touchpath`` argument parser (plain-text help)."""
    parser = argparse.ArgumentParser(
        prog="touchpath",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"touchpath {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = _command(sub, "up")
    up.add_argument(
        "--ephemeral",
        action="store_true",
        help="memory storage for the broker, no AOF: nothing survives a restart",
    )
    up.set_defaults(run=cmd_up)
    for name, run in (("collector", cmd_collector), ("api", cmd_api)):
        service = _command(sub, name)
        service.add_argument("--workers", type=int, default=0, help="uvicorn worker processes")
        service.set_defaults(run=run)
    _command(sub, "processor").set_defaults(run=cmd_processor)
    _command(sub, "webhooks").set_defaults(run=cmd_webhooks)
    again = _command(sub, "reevaluate")
    again.add_argument("--silent", action="store_true", help="announce no corrections")
    again.add_argument("--all", action="store_true", help="even when the rules did not change")
    again.set_defaults(run=cmd_reevaluate)
    _command(sub, "check")
    _email_links_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, warn about unknown variables, validate configuration, run."""
    args = build_parser().parse_args(argv)
    unknown = unknown_variable_warnings(configured_variables())
    if args.command == "check":
        return cmd_check(unknown)
    for line in unknown:
        print(f"touchpath: {line}", file=sys.stderr)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"touchpath: {exc}", file=sys.stderr)
        return 2
    return int(args.run(args, settings))


if __name__ == "__main__":
    sys.exit(main())
