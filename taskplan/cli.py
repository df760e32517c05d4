"""The `taskplan` command: run the embedded stack, serve the API, run a worker, operate plans.

taskplan run                 # everything, in the foreground (what `make run` does)
taskplan api [--port 9000]   # the REST API only
taskplan worker --role minion --tag minion_untagged
taskplan execute SegmentPurgeTask sales_OFFLINE -c "purgeFilter=country = 'US'"
taskplan plans list | show ID | watch ID | abort ID      (--json for scripts)
taskplan tables
taskplan schedule --task-type SegmentPurgeTask
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from taskplan.operator import add_operator_commands, run_operator_command
from taskplan.settings import load_settings


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="taskplan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="properties file (default: $TASKPLAN_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the embedded stack in the foreground")
    run.add_argument(
        "--ui-port", type=int, default=None, help="Temporal Web UI port (default: gRPC port + 1000)"
    )
    api = sub.add_parser("api", help="serve the REST API")
    api.add_argument("--host", default=None)
    api.add_argument("--port", type=int, default=None)
    sub.add_parser("worker", help="run a worker (options: python worker.py --help)", add_help=False)
    add_operator_commands(sub)
    if args_list and args_list[0] == "worker":
        import worker

        worker.main(args_list[1:])
        return 0
    args = parser.parse_args(args_list)
    settings = load_settings(args.config)
    if args.command == "run":
        from taskplan.runtime import run_stack

        return run_stack(settings, args.config, args.ui_port)
    if args.command == "api":
        from api.server import serve

        return serve(settings, args.config, host=args.host, port=args.port)
    if args.command in ("execute", "plans", "tables", "schedule"):
        return run_operator_command(args, f"http://{settings.controller_host}:{settings.controller_port}")
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
