"""`python -m worker.ops_report [YYYY-MM-DD]`: make the daily operations report now, for an operator."""
from __future__ import annotations

import argparse
import os
import sys

from shared.logs import configure_logging
from worker.maintenance import OPS_TENANT, daily_report


def main(argv: list[str] | None = None) -> int:
    """Enqueue the report (yesterday's, or the given UTC day's) as the scheduler would, and print its job id."""
    parser = argparse.ArgumentParser(prog="python -m worker.ops_report", description=main.__doc__)
    parser.add_argument("day", nargs="?", help="UTC day, YYYY-MM-DD (default: yesterday)")
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("LOG_LEVEL", "WARNING"))
    job_id = daily_report(args.day)
    print(job_id)
    print(f"download: GET /v1/jobs/{job_id}/pdf with the {OPS_TENANT!r} tenant's API key", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
