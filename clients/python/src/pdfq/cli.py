"""The `pdfq` command: submit (and follow, and download), status, cancel; exits non-zero when a job fails or
the service refuses."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

from pdfq import config
from pdfq.client import Client
from pdfq.errors import ApiError, JobEnded, JobFailed
from pdfq.models import Job, JobStatus

BAR_WIDTH = 30
EXIT_JOB_FAILED = 1
EXIT_ERROR = 2


class ProgressLine:
    """One status line redrawn in place; each redraw blanks what a longer earlier one left, and `clear` removes
    it, so the final message starts on a clean line."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._width = 0

    def show(self, job: Job) -> None:
        filled = BAR_WIDTH * job.progress.percent // 100
        where = f" (#{job.queue_position} in queue)" if job.queue_position is not None else ""
        text = (f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {job.progress.percent:3d}% "
                f"{job.status.value}: {job.progress.step}{where}")
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def request_body(args: argparse.Namespace) -> dict[str, Any]:
    """A path to an existing .html file is sent inline; anything else names a built-in template."""
    source = Path(args.template)
    inline = source.suffix == ".html" and source.is_file()
    body: dict[str, Any] = {"html": source.read_text(encoding="utf-8")} if inline else {"template": args.template}
    body["data"] = json.loads(Path(args.data).read_text(encoding="utf-8")) if args.data else {}
    body["priority"] = args.priority
    if args.output or args.filename:
        body["filename"] = args.filename or Path(args.output).name
    return body


def print_job(job: Job) -> None:
    print(json.dumps(job.raw, indent=2))


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    job = client.submit_job(**request_body(args))
    if not args.wait:
        print_job(job)
        return 0
    line = ProgressLine(sys.stderr)
    try:
        final = client.wait_for_job(job, timeout=None, on_update=None if args.quiet else line.show)
    except JobEnded as ended:
        line.clear()
        detail = f": {ended.code} {ended.message}" if isinstance(ended, JobFailed) else ""
        print(f"job {ended.job.id} {ended.job.status.value}{detail}".rstrip(), file=sys.stderr)
        return EXIT_JOB_FAILED
    line.clear()
    output = Path(args.output or final.filename or f"{final.id}.pdf")
    written = client.download(final, output)
    pages = final.result.pages if final.result else 0
    print(f"{output} ({plural(pages, 'page')}, {plural(written, 'byte')})", file=sys.stderr)
    return 0


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.get_job(args.job_id)
    print_job(job)
    return EXIT_JOB_FAILED if job.status in (JobStatus.FAILED, JobStatus.CANCELED) else 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    print_job(client.cancel_job(args.job_id))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pdfq", description="Render PDFs with a pdfq service (PDFQ_URL, default "
                                   f"{config.DEFAULT_URL}; PDFQ_API_KEY, default {config.DEFAULT_API_KEY}).")
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
    with Client() as client:
        try:
            code: int = args.run(client, args)
            return code
        except ApiError as exc:
            hint = " (set PDFQ_API_KEY to an API key of this service)" if exc.status == 401 else ""
            print(f"pdfq: {exc}{hint}", file=sys.stderr)
        except httpx.TransportError as exc:
            print(f"pdfq: cannot reach {client.base_url}: {type(exc).__name__}", file=sys.stderr)
        except (OSError, json.JSONDecodeError) as exc:
            print(f"pdfq: {exc}", file=sys.stderr)
    return EXIT_ERROR
