"""The plugin's small window (tkinter, which Python ships): the settings SE keeps for the plugin (language,
model, engine), a Transcribe button, then the progress with a Cancel button.

Subtitle Edit starts the plugin without a window of its own and waits for it with no way to cancel
(MainViewModel.RunPlugin passes CancellationToken.None), so this is the user's only view and only way out.
Where there is no display, or tkinter is missing, or the settings say `"window": false`, the plugin runs
without it, as before."""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable

AUTO = "auto (detect)"


def available() -> bool:
    """Whether a window can be shown: tkinter is there, and so is a display (always on Windows and macOS)."""
    if sys.platform not in ("win32", "darwin") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return False
    try:
        import tkinter  # noqa: F401
    except ImportError:
        return False
    return True


class PluginWindow:
    """`PluginWindow(settings, languages, models, work).run()` shows the window and returns (settings, result):
    the settings as the user left them, and `work`'s result, or None when cancelled.

    `work(settings, progress, cancelled)` runs in a thread: it calls `progress(fraction, text)` as it goes and
    stops soon after `cancelled` (a threading.Event) is set, by raising or returning."""

    def __init__(
        self,
        settings: dict,
        languages: list[str],
        models: list[str],
        work: Callable[[dict, Callable[[float, str], None], threading.Event], object],
        title: str = "Qwen3-ASR speech to text",
    ):
        import tkinter as tk
        from tkinter import ttk

        self.settings, self.work = dict(settings), work
        self.events: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()
        self.result: object = None
        self.root = tk.Tk()
        self.root.title(title)
        self.root.resizable(False, False)
        frame = ttk.Frame(self.root, padding=12)
        frame.grid()
        ttk.Label(frame, text="Language").grid(row=0, column=0, sticky="w")
        self.language = ttk.Combobox(frame, values=[AUTO, *languages], width=28)
        self.language.set(settings.get("language") or AUTO)
        self.language.grid(row=0, column=1, pady=2)
        ttk.Label(frame, text="Model").grid(row=1, column=0, sticky="w")
        self.model = ttk.Combobox(frame, values=models, width=28)
        self.model.set(settings.get("model") or "")  # empty: the default (for a server: the model it serves)
        self.model.grid(row=1, column=1, pady=2)
        ttk.Label(frame, text="Engine").grid(row=2, column=0, sticky="w")
        self.engine = ttk.Combobox(frame, values=["local", "openai"], width=28)
        self.engine.set(settings.get("engine") or "local")
        self.engine.grid(row=2, column=1, pady=2)
        self.bar = ttk.Progressbar(frame, length=300, maximum=1.0)
        self.bar.grid(row=3, column=0, columnspan=2, pady=(10, 2))
        self.status = ttk.Label(frame, text="Choose the settings, then Transcribe.")
        self.status.grid(row=4, column=0, columnspan=2, sticky="w")
        buttons = ttk.Frame(frame)
        buttons.grid(row=5, column=0, columnspan=2, pady=(8, 0), sticky="e")
        self.start_button = ttk.Button(buttons, text="Transcribe", command=self.start)
        self.start_button.grid(row=0, column=0, padx=4)
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.cancel)
        self.cancel_button.grid(row=0, column=1)
        self.root.protocol("WM_DELETE_WINDOW", self.cancel)
        self.root.bind("<Return>", lambda _: self.start())
        self.root.bind("<Escape>", lambda _: self.cancel())
        self.started = False

    def chosen(self) -> dict:
        language = self.language.get().strip()
        return {
            **self.settings,
            "language": None if language in ("", AUTO) else language,
            "model": self.model.get().strip() or None,
            "engine": self.engine.get().strip() or "local",
        }

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self.settings = self.chosen()
        for widget in (self.language, self.model, self.engine, self.start_button):
            widget.state(["disabled"])
        self.status.config(text="Loading the model…")

        def progress(fraction: float, text: str) -> None:
            self.events.put(("progress", fraction, text))

        def run() -> None:
            try:
                self.events.put(("done", self.work(self.settings, progress, self.cancelled), ""))
            except BaseException as exc:  # shown by the caller's response; the window only closes
                self.events.put(("failed", exc, ""))

        threading.Thread(target=run, daemon=True).start()
        self.root.after(100, self.poll)

    def poll(self) -> None:
        while True:
            try:
                kind, value, text = self.events.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                self.bar["value"] = max(0.0, min(1.0, value))
                self.status.config(text=text)
            else:
                self.result = value if kind == "done" else self.result
                self.error = value if kind == "failed" else None
                self.root.destroy()
                return
        self.root.after(100, self.poll)

    def release(self) -> None:
        """Free the Tcl interpreter here, in the thread that made it: left to the garbage collector, it may be
        freed in another thread, and Tcl then aborts the process (Tcl_AsyncDelete: wrong thread)."""
        import gc

        for name in ("language", "model", "engine", "bar", "status", "start_button", "cancel_button", "root"):
            setattr(self, name, None)
        gc.collect()

    def cancel(self) -> None:
        self.cancelled.set()
        if not self.started:
            self.root.destroy()
        else:
            self.status.config(text="Cancelling after the current chunk…")
            self.cancel_button.state(["disabled"])

    def run(self) -> tuple[dict, object]:
        self.error = None
        try:
            self.root.mainloop()
        finally:
            self.release()
        if self.error is not None and not self.cancelled.is_set():
            raise self.error
        return self.settings, None if self.cancelled.is_set() else self.result
