"""Time to the first subtitle in mpv, as a viewer feels it: from the key press (the script's `generate`
message) to the first subtitle track on screen, which holds the chunk that starts at the playhead, with the
real mpv, the host script and the engine at the real dimensions (random weights: only the times mean
anything).

    python -m bench.first_subtitle [--preset 0.6b] [--seconds 120] [--position 30] [--runs 2] [--work DIR]

The film is espeak-ng speech (tests/fixtures/trained/speech.py: VAD, on by default, finds it); mpv stays paused at `--position` (where the viewer pressed the key). The model folders are made once under --work (a random
checkpoint converted by our converter, ASR and aligner) and reused. Figures from one quiet machine; say which.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pysubs2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="0.6b")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--position", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--extra", default="", help="more engine arguments (e.g. --no-align)")
    args = parser.parse_args()

    from bench import prepare_model
    from qwen3asr_plugin.engine.decoder import preferred_quant
    from qwen3asr_plugin.engine.model_store import DEFAULT_ENCODER_PRECISIONS
    from qwen3asr_plugin.hosts.mpv import script_path
    from tests.fixtures.trained import speech
    from tests.media import video_with_audio, write_wav
    from tests.mpv_ipc import Mpv
    from tests.server_process import QWEN3ASR

    work = args.work or Path(tempfile.gettempdir()) / "qwen3asr-bench"
    work.mkdir(parents=True, exist_ok=True)
    # What conversion writes by default (fp32 and q8 encoders; the engine picks as it would for a user).
    _, asr = prepare_model(work, args.preset, DEFAULT_ENCODER_PRECISIONS, (preferred_quant(),))
    _, aligner = prepare_model(
        work, f"aligner-{args.preset}", DEFAULT_ENCODER_PRECISIONS, (preferred_quant(),)
    )
    film = work / f"film-{int(args.seconds)}.mp4"
    if not film.exists():
        said = speech.talk([("English", args.seconds)], seed=5).audio[: int(16_000 * args.seconds)]
        video_with_audio(film, write_wav(work / "film.wav", said))
    opts = ",".join(
        [
            f"qwen3asr-command={QWEN3ASR}",
            f"qwen3asr-model={asr}",
            f"qwen3asr-aligner={aligner}",
            f"qwen3asr-extra_args=--device cpu {args.extra}".strip(),
        ]
    )
    firsts = []
    for run in range(args.runs):
        mpv = Mpv(work / f"mpv-{run}.sock", f"--script={script_path()}", f"--script-opts={opts}")
        try:
            mpv.command("loadfile", str(film))
            while not mpv.get("duration"):
                mpv.pump(0.1)
            mpv.command("seek", args.position, "absolute+exact")
            while abs((mpv.get("time-pos") or 0) - args.position) > 0.5:
                mpv.pump(0.1)
            pressed = time.monotonic()
            mpv.command("script-message-to", "qwen3asr", "generate")
            while not mpv.messages("qwen3asr-update") and time.monotonic() - pressed < 600:
                mpv.pump(0.02)
            first = time.monotonic() - pressed
            if not mpv.messages("qwen3asr-update"):
                raise SystemExit(f"no subtitle within 600 s: {mpv.messages('qwen3asr-failed')}")
            track = [t for t in mpv.get("track-list") if t["type"] == "sub"][0]
            cues = pysubs2.load(track["external-filename"])
            firsts.append(first)
            print(
                f"run {run + 1}: first subtitle track after {first:.2f} s "
                f"({len(cues)} cues, {cues[0].start / 1000:.1f}-{cues[-1].end / 1000:.1f} s)"
            )
        finally:
            mpv.close()
    print(
        f"{args.preset}, {args.seconds:.0f} s film, key pressed at {args.position:.0f} s: the first subtitle track "
        f"(the chunk from the playhead, transcribed and timed) after {statistics.median(firsts):.2f} s "
        f"(median of {args.runs})"
    )


if __name__ == "__main__":
    main()
