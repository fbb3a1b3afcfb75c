"""How results are reported: markdown and HTML reports, conformance and history pages."""
