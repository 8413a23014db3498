"""Whether this process runs in a container that has its own network (Docker, Podman, a Kubernetes pod): there,
a server bound to 127.0.0.1 is out of reach of the port mapping (`docker run -p 8080:8080`), which connects to
the container's own address. Apptainer/Singularity share the host's network, so they do not count."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def own_network_container(environ: Mapping[str, str] = os.environ, root: Path = Path("/")) -> str | None:
    """The container's kind ("Docker", "Podman", "Kubernetes"), from the marks each leaves; None outside one (or
    in one that leaves none, or in one that shares the host's network)."""
    if environ.get("KUBERNETES_SERVICE_HOST"):  # set in every pod's containers
        return "Kubernetes"
    if (root / ".dockerenv").exists():
        return "Docker"
    if (root / "run" / ".containerenv").exists() or environ.get("container") == "podman":
        return "Podman"
    return None
