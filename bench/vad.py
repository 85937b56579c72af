"""With and without VAD on a long talk, as a subtitler compares them: the words right per language, words
written over music, noise and silence, the audio decoded, and the time taken.

    python -m bench.vad [--plan English:240,music:20,Chinese:200,silence:10,noise:15,English:90] [--seed 7]

The talk is synthesized speech (tests/fixtures/trained/speech.py: held-out voices and sentences, exact word
times) with sections where nothing is said; the models are the small ones trained here
(tests/fixtures/trained/asr and aligner), converted by our converter (fp32 encoder, f32 decoder). A word
"over non-speech" is one the aligner timed at least 0.3 s inside a music, noise or silence section; it is
"invented" when no word spoken within 5 s of the section is that word. Figures from one quiet machine; say
which.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

TRAINED = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "trained"
PLAN = "English:240,music:20,Chinese:200,silence:10,noise:15,English:90"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--plan", default=PLAN, help="sections kind:seconds (a language, music, noise, silence)"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, help="keep the converted models here (default: a temp folder)")
    parser.add_argument("--asr", type=Path, default=TRAINED / "asr", help="ASR checkpoint (a retrained one)")
    parser.add_argument("--aligner", type=Path, default=TRAINED / "aligner", help="aligner checkpoint")
    args = parser.parse_args()
    os.environ["QWEN3ASR_LOAD_PLUGINS"] = ""  # the built-in pipeline alone, whatever plugins are installed

    from qwen3asr_plugin.api import RunOptions, load_engine, transcribe_to_transcript
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.trained import speech
    from tests.fixtures.trained.evaluate import edit_distance, units
    from tests.media import write_wav

    plan = [(kind, float(seconds)) for kind, seconds in (p.split(":") for p in args.plan.split(","))]
    work = args.work or Path(tempfile.mkdtemp(prefix="qwen3asr-vad-"))
    models = []
    for name, checkpoint in (("asr", args.asr), ("aligner", args.aligner)):
        out = work / name
        if not (out / "model.json").exists():
            convert(checkpoint, out, encoder_precisions=("fp32",), decoder_quants=("f32",))
        models.append(str(out))
    talk = speech.talk(plan, seed=args.seed)
    wav = write_wav(work / "talk.wav", talk.audio)
    engine = load_engine("local", model=models[0], aligner=models[1], device="cpu")
    decoded = [0.0]
    inner = engine.pipeline.transcribe_chunks

    def counting(audios, *rest, **keywords):
        decoded[0] += sum(a.size for a in audios) / 16_000
        return inner(audios, *rest, **keywords)

    engine.pipeline.transcribe_chunks = counting
    quiet = [(a, b) for kind, a, b in talk.sections if kind in ("music", "noise", "silence")]
    languages = [kind for kind in dict.fromkeys(k for k, _ in plan) if kind in speech.ESPEAK_VOICES]
    print(f"talk: {talk.seconds:.0f} s ({args.plan}), seed {args.seed}; trained models, f32")
    header = "".join(f"{lang + (' WER' if lang == 'English' else ' CER'):>13}" for lang in languages)
    print(f"{'':>8}{header}{'over non-speech':>17}{'invented':>10}{'loop':>6}{'decoded s':>11}{'wall s':>8}")
    for vad in (False, True):
        decoded[0] = 0.0
        began = time.perf_counter()
        transcript = transcribe_to_transcript(engine, str(wav), RunOptions(vad_filter=vad))
        wall = time.perf_counter() - began
        rates, loops = [], 0
        for language in languages:
            truth = talk.text(language)
            said = [u for s in transcript.segments if s.language == language for u in units(s.text, language)]
            rates.append(edit_distance(truth, said) / max(1, len(truth)))
            grams = Counter(tuple(said[i : i + 4]) for i in range(len(said) - 3))
            loops = max([loops, *grams.values()])
        over = invented = 0
        for a, b in quiet:
            near = {w.word for _, w in talk.words if a - 5 < w.end and w.start < b + 5}
            for segment in transcript.segments:
                for w in segment.words or ():
                    if a + 0.3 < w.start < b - 0.3:
                        over += 1
                        invented += not set(units(w.word, segment.language or "English")) <= near
        cells = "".join(f"{rate:>13.3f}" for rate in rates)
        label = "VAD" if vad else "no VAD"
        print(f"{label:>8}{cells}{over:>17}{invented:>10}{loops:>6}{decoded[0]:>11.1f}{wall:>8.1f}")


if __name__ == "__main__":
    main()
