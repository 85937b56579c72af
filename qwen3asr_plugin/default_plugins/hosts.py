"""Built-in host adapters (mpv, Subtitle Edit, ffmpeg) register here as they land."""
