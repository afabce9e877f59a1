"""Factur-X / ZUGFeRD e-invoices: the options, the invoice's facts, the CII XML and its XSD check."""
