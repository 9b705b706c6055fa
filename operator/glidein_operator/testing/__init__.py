"""Real parts for tests and the demo: a local control plane, kubectl, service fakes."""
