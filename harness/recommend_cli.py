"""``streamrec recommend --user U``: ask the serving process for recommendations.

Over HTTP by default (``--url``, default ``http://<STREAMREC_HTTP_HOST>:<STREAMREC_HTTP_PORT>``)
or over the request/response topics (``--via topic``: ``KAFKA_BOOTSTRAP_SERVERS``, else the
running ``streamrec up``, found as :class:`~streamrec.client.TopicRecClient` finds it).
Prints a table, or the raw response with ``--json``. Exit status 0 on an answer, 1 on a
service error or timeout, 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys

from streamrec.client import RecClient, RecError, TopicRecClient
from streamrec.settings import Settings


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec recommend", description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", required=True, help="user id to recommend for")
    parser.add_argument("--k", type=int, default=None, help="how many items (server default when omitted)")
    parser.add_argument("--via", choices=("http", "topic"), default="http", help="HTTP API or request topics")
    parser.add_argument("--url", default=f"http://{settings.http_host}:{settings.http_port}",
                        help="serving base URL for --via http")
    parser.add_argument("--timeout", type=float, default=settings.serving_request_timeout_s,
                        help="seconds to wait for the answer")
    parser.add_argument("--exclude-tags", default=None, help="comma-separated tags to leave out")
    parser.add_argument("--require-tags", default=None, help="comma-separated tags; items need one of them")
    parser.add_argument("--filters", type=_json_object, default=None,
                        help='conditions on item attributes as JSON, e.g. \'{"category": "books", "price": {"lt": 20}}\'')
    parser.add_argument("--diversity", type=float, default=None, help="MMR diversity weight in [0, 1]")
    parser.add_argument("--exploration", type=float, default=None, help="share of exploration slots in [0, 1]")
    parser.add_argument("--json", action="store_true", help="print the raw JSON response")
    return parser


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _split(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    args = build_parser(settings).parse_args(sys.argv[1:] if argv is None else argv)
    options = {"exclude_tags": _split(args.exclude_tags), "require_tags": _split(args.require_tags),
               "filters": args.filters, "diversity": args.diversity, "exploration": args.exploration}
    try:
        if args.via == "http":
            response = RecClient(args.url, timeout=args.timeout).recommend(args.user, args.k, **options)
        else:
            with TopicRecClient(settings, timeout=args.timeout) as client:
                response = client.recommend(args.user, args.k, **options)
    except RecError as exc:
        print(f"streamrec recommend: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(response, indent=2))
        return 0
    print(f"user {response['user_id']}  model version {response['model_version']}  "
          f"state time {response['state_time']}  request {response['request_id']}")
    print(f"{'#':>3}  {'item':<12} {'score':>9}  {'why':<24} title")
    for rank, item in enumerate(response["items"], 1):
        why = item["reason"] if item.get("reason_kind") != "history" else \
            f"because {item.get('reason_title') or item['reason']}"
        print(f"{rank:>3}  {item['item_id']:<12} {item['score']:>9.4f}  {why[:24]:<24} {item.get('title', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
