"""A local Kubernetes control plane built from upstream source (see assets.py)."""

from glidein_operator.testing.controlplane.cluster import ControlPlaneError, LocalControlPlane

__all__ = ["ControlPlaneError", "LocalControlPlane"]
