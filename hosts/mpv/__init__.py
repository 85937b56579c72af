"""The mpv host: a Lua script that runs `qwen3asr transcribe` for the playing file and shows the subtitles as
they arrive. `qwen3asr hosts install mpv` copies it (and its options file) where mpv looks."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from pathlib import Path

from qwen3asr_plugin import hookimpl
from qwen3asr_plugin.api import installed_script

SCRIPT = "qwen3asr.lua"
CONF = "qwen3asr.conf"


def script_path() -> Path:
    return Path(str(resources.files(__name__) / SCRIPT))


def mpv_config_dir() -> Path:
    """mpv's user folder: $MPV_HOME, else on Windows the `portable_config` folder beside mpv.exe when there is
    one (mpv then reads its config from there only: mpv.rst, FILES ON WINDOWS), else %APPDATA%/mpv, else
    $XDG_CONFIG_HOME/mpv or ~/.config/mpv."""
    if os.environ.get("MPV_HOME"):
        return Path(os.environ["MPV_HOME"])
    if sys.platform == "win32":
        found = shutil.which("mpv")
        if found and (Path(found).parent / "portable_config").is_dir():
            return Path(found).parent / "portable_config"
        return Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming")) / "mpv"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mpv"


def engine_command() -> str:
    """The full path of this installation's `qwen3asr` command, so mpv finds it without PATH (the scripts
    folder of the install, which is not beside python.exe outside a venv)."""
    here = installed_script("qwen3asr")
    return str(here) if here.exists() else (shutil.which("qwen3asr") or "qwen3asr")


class MpvHost:
    def targets(self) -> tuple[Path, Path]:
        base = mpv_config_dir()
        return base / "scripts" / SCRIPT, base / "script-opts" / CONF

    def install(self) -> str:
        script, conf = self.targets()
        script.parent.mkdir(parents=True, exist_ok=True)
        conf.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(script_path(), script)
        note = f"kept your {conf}"
        if not conf.exists():  # never overwrite the user's options
            text = (resources.files(__name__) / CONF).read_text(encoding="utf-8")
            conf.write_text(text.replace("command=qwen3asr", f"command={engine_command()}"), encoding="utf-8")
            note = f"wrote {conf}"
        return f"installed {script}; {note}; press Ctrl+Alt+s in mpv to generate subtitles"

    def uninstall(self) -> str:
        removed = [str(p) for p in self.targets() if p.exists()]
        for p in self.targets():
            p.unlink(missing_ok=True)
        return "removed " + (", ".join(removed) if removed else "nothing (not installed)")

    def status(self) -> str:
        script, _ = self.targets()
        return f"installed at {script}" if script.exists() else f"not installed (would go to {script})"


@hookimpl(trylast=True)
def register_hosts(register):
    register("mpv", MpvHost(), "generate subtitles in mpv while you watch (Ctrl+Alt+s)")
