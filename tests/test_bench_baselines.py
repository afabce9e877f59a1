"""The bench's baselines must render what the service renders: a template filter they lack stops `make bench`."""
from __future__ import annotations

from bench.ceiling import invoice_data, plain_invoice_template
from bench.workloads import invoice_document, varied_invoice


def test_plain_loop_renders_the_invoice_with_its_filters() -> None:
    data = invoice_data()
    html = plain_invoice_template().render({**data, "data": data})
    assert data["invoice_number"] in html and "Issue date" in html


def test_naive_loop_documents_differ_per_number() -> None:
    first, second = invoice_document(1), invoice_document(2)
    assert varied_invoice(1)["invoice_number"] in first and varied_invoice(2)["invoice_number"] in second
    assert first != second
