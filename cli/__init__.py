"""`pdfq`: a small command-line client for the service (submit, follow, download, status, cancel)."""
