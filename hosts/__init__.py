"""Thin host adapters (mpv, Subtitle Edit, ffmpeg) over the public API."""
