"""Thin host adapters (mpv, Subtitle Edit, ffmpeg) over the public API."""

from __future__ import annotations

import os
import sys
import sysconfig
from importlib import metadata
from pathlib import Path


def installed_script(name: str) -> Path:
    """The absolute path of this installation's console script `name` (`.exe` on Windows).

    The path pip recorded in the distribution's RECORD when there is one (venv, system, `--user` and conda
    installs alike; pip writes scripts to the scheme's scripts folder, which is not beside `python.exe`
    outside a venv), else the scripts folder of the install scheme whose site-packages holds this package
    (editable installs)."""
    exe = name + (".exe" if sys.platform == "win32" else "")
    try:
        dist = metadata.distribution("qwen3asr-plugin")
        for file in dist.files or ():
            if file.name == exe:
                return Path(os.path.normpath(dist.locate_file(file))).absolute()
    except metadata.PackageNotFoundError:
        pass
    here = Path(__file__).resolve()
    user = sysconfig.get_preferred_scheme("user")
    if here.is_relative_to(Path(sysconfig.get_path("purelib", user)).resolve()):
        return Path(sysconfig.get_path("scripts", user)) / exe
    return Path(sysconfig.get_path("scripts")) / exe
