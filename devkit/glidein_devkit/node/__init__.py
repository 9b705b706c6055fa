"""A Kubernetes node beside the local control plane (kubelet, scheduler, containerd),
and the project's images built here from Debian packages."""
