"""Machine description for benchmark result files."""

from __future__ import annotations

import os
import platform
import sys


def describe() -> str:
    from ablab.runtime.provenance import cpu_model

    parts = [
        f"CPU: {cpu_model()} ({os.cpu_count()} cores)",
        f"Python {sys.version.split()[0]}",
        f"platform {platform.platform()}",
    ]
    try:
        import torch

        parts.append(f"torch {torch.__version__}")
        if torch.cuda.is_available():
            parts.append(f"GPU: {torch.cuda.get_device_name(0)}")
        else:
            parts.append("GPU: none")
    except ImportError:
        pass
    from ablab._version import __version__

    parts.append(f"ablab {__version__}")
    return "; ".join(parts)
