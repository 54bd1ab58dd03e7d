"""End-to-end tests on the real local test bed (a package, so tests can import the conftest types)."""
