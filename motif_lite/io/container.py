"""Whether this process runs in a container that usually has its own network (Docker, Podman, a Kubernetes pod):
there, a server bound to 127.0.0.1 is out of reach of the port mapping (`docker run -p 8080:8080`), which connects
to the container's own address. Apptainer/Singularity share the host's network, so they do not count. The marks
read here are left with the host's network too (`docker run --network host`, a hostNetwork pod), which they
cannot tell apart: what is said of such a container has to allow for it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def own_network_container(environ: Mapping[str, str] = os.environ, root: Path = Path("/")) -> str | None:
    """The container's kind ("Docker", "Podman", "Kubernetes"), from the marks each leaves, also where it uses
    the host's network; None outside one (or in one that leaves none, as Apptainer)."""
    if environ.get("KUBERNETES_SERVICE_HOST"):  # set in every pod's containers
        return "Kubernetes"
    if (root / ".dockerenv").exists():
        return "Docker"
    if (root / "run" / ".containerenv").exists() or environ.get("container") == "podman":
        return "Podman"
    return None
