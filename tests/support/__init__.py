"""Helpers the tests share (imported as ``tests.support.X``; a conftest holds only
fixtures and hooks): planning builders, the simulated-weeks reconcile, the cluster handle
and the driver-contract harnesses. What also runs outside the tests (service doubles, the
control plane, the demo) is in the development kit, ``glidein_devkit``."""
