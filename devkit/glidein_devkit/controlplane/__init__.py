"""A local Kubernetes control plane built from upstream source (see assets.py)."""

from glidein_devkit.controlplane.cluster import ControlPlaneError, LocalControlPlane

__all__ = ["ControlPlaneError", "LocalControlPlane"]
