"""Entry point: `pdfq submit|status|cancel`; exits non-zero when a job fails or the service refuses."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import requests

from cli.client import ApiProblem, Client

BAR_WIDTH = 30
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2


def progress_bar(job: dict[str, Any]) -> str:
    percent = job["progress"]["percent"]
    filled = BAR_WIDTH * percent // 100
    where = f" (#{job['queue_position']} in queue)" if job.get("queue_position") is not None else ""
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {percent:3d}% {job['status']}: {job['progress']['step']}{where}"


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """A path to an existing .html file is sent inline; anything else names a built-in template."""
    source = Path(args.template)
    body: dict[str, Any] = ({"html": source.read_text(encoding="utf-8")} if source.suffix == ".html" and source.is_file()
                            else {"template": args.template})
    body["data"] = json.loads(Path(args.data).read_text(encoding="utf-8")) if args.data else {}
    body["priority"] = args.priority
    if args.output or args.filename:
        body["filename"] = args.filename or Path(args.output).name
    return body


def wait_for(client: Client, job: dict[str, Any], quiet: bool) -> dict[str, Any]:
    """Follow the job on one status line, each redraw padded over the longer line it replaces."""
    final = job
    drawn = 0
    for _event, final in client.events(job):
        if not quiet:
            line = progress_bar(final)
            print("\r" + line.ljust(drawn), end="", file=sys.stderr, flush=True)
            drawn = len(line)
    if not quiet:
        print(file=sys.stderr)
    return final


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    job = client.submit(request_body(args))
    if not args.wait:
        print(json.dumps(job, indent=2))
        return 0
    final = wait_for(client, job, args.quiet)
    if final["status"] != "completed":
        error = final.get("error") or {}
        print(f"job {final['id']} {final['status']}: {error.get('code', '')} {error.get('message', '')}".rstrip(),
              file=sys.stderr)
        return EXIT_JOB_FAILED
    output = Path(args.output or final["filename"])
    output.write_bytes(client.download(final["id"]))
    pages = final["result"]["pages"]
    print(f"{output} ({pages} page{'' if pages == 1 else 's'}, {final['result']['bytes']} bytes)", file=sys.stderr)
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.status(args.job_id)
    print(json.dumps(job, indent=2))
    return EXIT_JOB_FAILED if job["status"] in ("failed", "canceled") else 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    print(json.dumps(client.cancel(args.job_id), indent=2))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pdfq", description="Render PDFs with a pdfq service "
                                   "(PDFQ_URL, default http://127.0.0.1:8000; PDFQ_API_KEY, default dev-key).")
    commands = root.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="submit a job (a template name, or a local .html file)")
    submit.add_argument("template")
    submit.add_argument("--data", help="JSON file with the template's data")
    submit.add_argument("--priority", default="normal", choices=["urgent", "high", "normal", "low"])
    submit.add_argument("--filename", help="download name of the PDF")
    submit.add_argument("--wait", action="store_true", help="follow progress and download when done")
    submit.add_argument("-o", "--output", help="where to write the PDF (with --wait)")
    submit.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    submit.set_defaults(run=cmd_submit)
    for name, run in (("status", cmd_status), ("cancel", cmd_cancel)):
        command = commands.add_parser(name, help=f"{name} a job")
        command.add_argument("job_id")
        command.set_defaults(run=run)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = Client(os.environ.get("PDFQ_URL", "http://127.0.0.1:8000"), os.environ.get("PDFQ_API_KEY", "dev-key"))
    try:
        return args.run(client, args)
    except ApiProblem as exc:
        print(f"pdfq: {exc}", file=sys.stderr)
        if exc.status == 401:
            print("pdfq: set PDFQ_API_KEY to your API key (the service refused the one sent)", file=sys.stderr)
        return EXIT_ERROR
    except (requests.ConnectionError, requests.Timeout) as exc:
        print(f"pdfq: cannot reach {client.base_url}: {type(exc).__name__}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, json.JSONDecodeError) as exc:
        print(f"pdfq: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
