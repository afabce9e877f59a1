"""`python -m pdfq`: the `pdfq` command."""
import sys

from pdfq.cli import main

sys.exit(main())
