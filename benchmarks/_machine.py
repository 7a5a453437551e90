"""Machine and package description recorded beside every benchmark result."""

import importlib.metadata
import os
import platform
import sys

import jax

import bayesvol


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(packages=("jax", "jaxlib", "numpyro", "numpy")) -> dict:
    """CPU, cores, load and the versions of ``packages`` (``None`` where one is not installed)."""
    versions = {}
    for pkg in packages:
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    versions["bayesvol"] = bayesvol.__version__
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "jax_devices": [str(d) for d in jax.devices()],
        "jax_x64": bool(jax.config.jax_enable_x64),
        "loadavg_start": list(os.getloadavg()),
        "versions": versions,
    }
