"""What the sandbox's environment needs beyond its packages, made once by `make sandbox`.

Run with the sandbox venv's own interpreter: `python sandbox/build.py .sandbox/venv`.

- `etc/fonts.conf`: an empty fontconfig configuration. Nothing of the host's /etc is bound into
  the sandbox, and without a configuration fontconfig prints "Cannot load default config file"
  to the stderr of every first plot (matplotlib ships its own fonts and does not need it).
- `share/matplotlib/`: matplotlib's font cache, built here once. Building it takes about a
  second, which every new kernel would otherwise spend on its first plot; the kernel's launcher
  copies it into its own writable config directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def main(venv: Path) -> int:
    (venv / "etc").mkdir(exist_ok=True)
    (venv / "etc" / "fonts.conf").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n'
        "<fontconfig></fontconfig>\n"
    )
    cache = venv / "share" / "matplotlib"
    cache.mkdir(parents=True, exist_ok=True)
    env = {"MPLCONFIGDIR": str(cache), "HOME": str(cache), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-c", "import matplotlib.font_manager as f; f.findfont('DejaVu Sans')"],
        check=True,
        env=env,
    )
    for path in cache.iterdir():
        os.chmod(path, 0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
