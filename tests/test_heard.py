"""The product with a model that hears: the small Qwen3-ASR and aligner trained here on synthesized speech
(tests/fixtures/trained/, committed checkpoints converted by our own converter), checked the way a subtitler
checks subtitles: the right words, in cues that follow the subtitle rules, shown while they are spoken, and
nothing where nothing is said; through the Python API, the CLI, `qwen3asr align`, the real mpv, the server
and the ffmpeg host.

The held-out figures are printed by `python -m tests.fixtures.trained.evaluate` (README, Tests); each test here
prints its own figures with `pytest -s`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pysubs2
import pytest

from qwen3asr_plugin.api import RunOptions, load_engine, transcribe_to_transcript
from qwen3asr_plugin.engine.convert import convert
from qwen3asr_plugin.engine.cues import rules_for, width
from tests.fixtures.trained import speech
from tests.fixtures.trained.evaluate import edit_distance, units
from tests.media import ffmpeg, video_with_audio, write_wav
from tests.server_process import QWEN3ASR, ServerProcess

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="tests/run.sh installs espeak-ng")

TRAINED = Path(__file__).parent / "fixtures" / "trained"
# Bars: what the committed models reach today, with a margin (measured on a 2-core x86 machine, f32 decoder,
# figures in the comments), so that a change to the engine, the converter or a host that loses words, times
# or cues fails. The aligner meets issue [12]'s target (90 % of held-out words within 100 ms: 92.4 %); the
# ASR model is far from its (WER 10 %): it hears single sentences partly and loses most words in the engine's
# 20-30 s chunks. Raise the bars when a better model is committed.
WER_BAR = {"English": 0.40, "Chinese": 0.30}  # held-out, one sentence at a time: 0.268, 0.197 (40 utterances)
# the ten-minute talk in engine chunks: 0.803, 0.649; the 70 s talk through serve 0.911, 0.558
TALK_BAR = {"English": 0.95, "Chinese": 0.75}
LANGUAGE_BAR = 0.95  # 40 of 40
ALIGN_BAR = 0.75  # words with start and end within 100 ms by `qwen3asr align`: 67 of 79
PLACED_BAR = 0.28  # words of a cue spoken inside its span (+-SLACK): 245 of 732 (talk), 33 of 74 (ffmpeg)
SLACK = 0.1  # seconds a word may be spoken outside its cue's span
MPV_BAR = 4  # of 10 moments mid-word, those at which mpv shows that word: 5
# seconds decoded with --vad beyond the speech sections (pads and what Silero takes for speech in the
# music), though the 3 s pauses between sentences are not decoded either: measured -33.0 (505.6 of 583.6 s)
VAD_KEPT_BAR = 0.0
LOOP_BAR = 8  # the most times one 4-word sequence recurs in the talk: 1
# words written inside the music, noise or silence that nobody said there: 3 with VAD (the default; its speech
# region runs 8 s into the music, README: Transcribe); bench/vad.py counts 4 with --no-vad
INVENTED_BAR = 3
MISPLACED_BAR = 1  # real words the aligner put inside a quiet section: none (VAD on)
LONG_TALK = [
    ("English", 240),
    ("music", 20),
    ("Chinese", 200),
    ("silence", 10),
    ("noise", 15),
    ("English", 90),
]
SHORT_TALK = [("English", 30), ("music", 8), ("Chinese", 30)]


@pytest.fixture(scope="module")
def heard(tmp_path_factory):
    """The committed checkpoints through `qwen3asr convert` (fp32 encoder, f32 decoder): (asr, aligner)."""
    out = tmp_path_factory.mktemp("heard")
    asr = convert(TRAINED / "asr", out / "asr", encoder_precisions=("fp32",), decoder_quants=("f32",))
    aligner = convert(
        TRAINED / "aligner", out / "aligner", encoder_precisions=("fp32",), decoder_quants=("f32",)
    )
    return str(asr), str(aligner)


@pytest.fixture(scope="module")
def engine(heard):
    asr, aligner = heard
    return load_engine("local", model=asr, aligner=aligner, device="cpu")


def error_rate(truth: list[str], said: list[str]) -> float:
    return edit_distance(truth, said) / max(1, len(truth))


def said_units(segments, language: str) -> list[str]:
    return [u for s in segments if s.language == language for u in units(s.text, language)]


@pytest.fixture(scope="module")
def long_talk(tmp_path_factory):
    """About ten minutes: English, music, Mandarin, silence, noise, English again, as a WAV file."""
    t = speech.talk(LONG_TALK, seed=7)
    return t, write_wav(tmp_path_factory.mktemp("long") / "talk.wav", t.audio)


@pytest.fixture(scope="module")
def long_transcript(engine, long_talk):
    return transcribe_to_transcript(engine, str(long_talk[1]))


@pytest.fixture(scope="module")
def short_talk(tmp_path_factory):
    """About 70 s (English, music, Mandarin) as a WAV file and as a video."""
    folder = tmp_path_factory.mktemp("short")
    t = speech.talk(SHORT_TALK, seed=11)
    wav = write_wav(folder / "talk.wav", t.audio)
    return t, wav, video_with_audio(folder / "film.mp4", wav)


def test_held_out_utterances_are_heard(heard):
    """The bars of issue [12] on held-out voices and sentences, one utterance at a time."""
    from tests.fixtures.trained.evaluate import evaluate

    scores = evaluate(Path(heard[0]), 40, log=lambda _: None)
    print(
        {
            language: (round(score.rate, 3), score.language_right, score.utterances)
            for language, score in scores.items()
        }
    )
    for language, score in scores.items():
        assert score.rate <= WER_BAR[language], (language, score)
        assert score.language_right >= LANGUAGE_BAR * score.utterances, (language, score)


def test_a_long_talk_loses_no_words_at_chunk_edges(long_talk, long_transcript):
    """Ten minutes in 20-30 s chunks: the error rate per language stays within a few points of the held-out
    bar (a word cut at a chunk edge, or a chunk lost, would show here), and nothing is looped."""
    t, _ = long_talk
    figures = {}
    for language in ("English", "Chinese"):
        truth, said = t.text(language), said_units(long_transcript.segments, language)
        grams = Counter(tuple(said[i : i + 4]) for i in range(len(said) - 3))
        figures[language] = (error_rate(truth, said), len(said) / len(truth), max(grams.values()))
    print("talk", figures)
    for language, (rate, length, repeats) in figures.items():
        assert rate <= TALK_BAR[language], (language, figures)
        assert length <= 1.1, (language, figures)  # no run-away loop: the token budget holds
        assert repeats <= LOOP_BAR, (language, figures)
    assert long_transcript.language in ("English", "Chinese")
    assert {s.language for s in long_transcript.segments} == {"English", "Chinese"}


def test_nothing_is_written_where_nothing_is_said(long_talk, long_transcript):
    """Next to nothing is written in the music, the noise or the silence: a word timed inside one is either
    a word spoken just before or after it that the aligner placed late or early (at most MISPLACED_BAR), or
    one the model invented there (at most INVENTED_BAR)."""
    t, _ = long_talk
    quiet = [(a, b) for kind, a, b in t.sections if kind in ("music", "noise", "silence")]
    misplaced, invented = [], []
    for a, b in quiet:
        near = {w.word for _, w in t.words if a - 5 < w.end and w.start < b + 5}
        words = [w for s in long_transcript.segments for w in s.words or () if a + 0.3 < w.start < b - 0.1]
        for w in words:
            language = "Chinese" if any("\u4e00" <= c <= "\u9fff" for c in w.word) else "English"
            said = units(w.word, language)
            (misplaced if said and set(said) <= near else invented).append(w)
        cues = [c for c in long_transcript.cues if a + 0.3 < c.start < b - 0.1]
        assert all(c.words and c.words[0] in words for c in cues), (a, b, cues)  # cues only of those words
    print("misplaced", misplaced, "invented", invented)
    assert len(misplaced) <= MISPLACED_BAR, misplaced
    assert len(invented) <= INVENTED_BAR, invented


def test_cues_follow_the_subtitle_rules_and_are_spoken_inside_their_span(long_talk, long_transcript):
    t, _ = long_talk
    cues = long_transcript.cues
    assert len(cues) > 50
    for prev, cue in zip(cues, cues[1:], strict=False):
        assert cue.start - prev.end >= 0.083 - 1e-3, (prev, cue)
        # at least 0.833 s, unless the next cue (after a pause that ends a cue) leaves no room
        short = prev.end - prev.start < rules_for(prev.language).min_duration_seconds - 1e-3
        assert not short or cue.start - prev.end <= rules_for(prev.language).min_gap_seconds + 1e-3, prev
    spoken = [(lang, w) for lang, w in t.words]
    placed = total = 0
    for cue in cues:
        rules = rules_for(cue.language)
        assert len(cue.lines) <= rules.max_lines, cue
        assert all(width(line, rules.cjk) <= rules.max_line_chars for line in cue.lines), cue
        assert 0.01 <= cue.end - cue.start <= rules.max_duration_seconds + 1e-3, cue
        if cue.language == "Chinese":
            # characters joined without spaces (a Latin word among them keeps its own)
            assert not any(re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", line) for line in cue.lines), cue
        for unit in units(cue.text, cue.language):
            total += 1
            placed += any(
                word.word == unit and cue.start - SLACK <= word.start and word.end <= cue.end + SLACK
                for lang, word in spoken
                if lang == cue.language
            )
    print("placed", placed, total)
    assert placed >= PLACED_BAR * total, (placed, total)


def test_vad_transcribes_only_the_speech_and_keeps_the_words(engine, long_talk, monkeypatch):
    """With VAD (Silero, the default) the music, silence and noise and the 3 s pauses are not decoded, no
    segment runs across them, and the words are as good as with `--no-vad` (chunks of whole speech regions
    lose none)."""
    t, wav = long_talk
    plain = transcribe_to_transcript(engine, str(wav), RunOptions(vad_filter=False))
    decoded = []
    inner = engine.pipeline.transcribe_chunks

    def counting(audios, *args, **keywords):
        decoded.extend(audio.size / 16_000 for audio in audios)
        return inner(audios, *args, **keywords)

    monkeypatch.setattr(engine.pipeline, "transcribe_chunks", counting)
    vad = transcribe_to_transcript(engine, str(wav), RunOptions(vad_filter=True))
    quiet = [(a, b) for kind, a, b in t.sections if kind in ("music", "noise", "silence")]
    print("decoded", round(sum(decoded), 1), "of", round(t.seconds, 1))
    assert sum(decoded) <= t.seconds - sum(b - a for a, b in quiet) + VAD_KEPT_BAR
    for a, b in quiet:
        assert not [s for s in vad.segments if s.start < a + 1 and s.end > b - 1], (a, b)
    for language in ("English", "Chinese"):
        truth = t.text(language)
        without = error_rate(truth, said_units(plain.segments, language))
        with_vad = error_rate(truth, said_units(vad.segments, language))
        print("vad", language, round(without, 3), round(with_vad, 3))
        assert with_vad <= without + 0.03, language


@pytest.mark.parametrize("kind", ["silence", "noise", "music"])
def test_a_file_with_nothing_said_gives_no_subtitles(heard, kind, tmp_path):
    """`language None` on real behaviour: the CLI writes an srt without a cue, and a text file without text."""
    asr, aligner = heard
    rng = np.random.default_rng(5)
    audio = {
        "silence": np.zeros(16_000 * 40, np.float32),
        "noise": speech.noise(rng, 40.0, 0.3),
        "music": speech.music(rng, 40.0, 0.3),
    }[kind]
    wav = write_wav(tmp_path / f"{kind}.wav", audio)
    run = subprocess.run(
        [QWEN3ASR, "transcribe", str(wav), "--model", asr, "--aligner", aligner, "--device", "cpu"]
        + ["-f", "srt,txt", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert "-->" not in (tmp_path / f"{kind}.srt").read_text(encoding="utf-8")
    assert not (tmp_path / f"{kind}.txt").read_text(encoding="utf-8").strip()


def test_align_times_a_known_script(heard, tmp_path):
    """`qwen3asr align` on held-out sentences with their script: word starts and ends within 100 ms."""
    asr, aligner = heard
    rng = np.random.default_rng(3)
    stream = speech.dataset("heldout", 1000, seed=21)
    within = total = 0
    for i in range(6):
        u = speech.joined(rng, stream, 3)
        wav = write_wav(tmp_path / f"clip{i}.wav", u.audio)
        script = tmp_path / f"clip{i}.txt"
        script.write_text(u.text, encoding="utf-8")
        run = subprocess.run(
            [QWEN3ASR, "align", str(wav), str(script), "--aligner", aligner, "--device", "cpu", "--json"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, run.stderr
        words = [json.loads(line) for line in run.stdout.splitlines()]
        timed = [w for w in words if units(w["word"], u.language)]
        assert [units(w["word"], u.language) for w in timed] == [[x.word] for x in u.words]
        for w, truth in zip(timed, u.words, strict=True):
            total += 1
            within += abs(w["start"] - truth.start) <= 0.1 and abs(w["end"] - truth.end) <= 0.1
    print("align", within, total)
    assert within >= ALIGN_BAR * total, (within, total)


def shown_words(text: str) -> list[str]:
    return re.findall(r"[a-z']+|[\u4e00-\u9fff]", text.lower())


@pytest.mark.skipif(shutil.which("mpv") is None, reason="mpv is installed by tests/run.sh")
def test_mpv_shows_the_words_while_they_are_spoken(heard, short_talk, tmp_path):
    """The real mpv with the host script, started at 40 s (the playback position first, then the beginning):
    at moments in the middle of spoken words, before and after the start position, `sub-text` holds that word."""
    from qwen3asr_plugin.hosts.mpv import script_path
    from tests.mpv_ipc import Mpv
    from tests.test_mpv import generate_from, wait_for

    asr, aligner = heard
    t, _, video = short_talk
    opts = ",".join(
        [f"qwen3asr-command={QWEN3ASR}", f"qwen3asr-model={asr}", f"qwen3asr-aligner={aligner}"]
        + ["qwen3asr-extra_args=--device cpu"]
    )
    mpv = Mpv(tmp_path / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")
    try:
        generate_from(mpv, video, 40, timeout=180)
        words = [w for _, w in t.words]
        picks = [words[i] for i in np.linspace(2, len(words) - 3, 10).astype(int)]
        assert any(w.start < 40 for w in picks) and any(w.start > 40 for w in picks)
        mpv.command("set_property", "pause", True)  # stand still at each moment, as a viewer pausing would
        hits = []
        for w in picks:
            at = (w.start + w.end) / 2
            mpv.command("seek", at, "absolute+exact")
            assert wait_for(lambda at=at: abs((mpv.get("time-pos") or 0) - at) <= 0.1, 10, mpv)  # 10 fps
            mpv.pump(0.3)
            hits.append(w.word in shown_words(mpv.get("sub-text") or ""))
        print("mpv", list(zip([w.word for w in picks], hits, strict=True)))
        assert sum(hits) >= MPV_BAR, list(zip([w.word for w in picks], hits, strict=True))
    finally:
        mpv.close()


def se_mp3(wav: Path) -> Path:
    """The upload Subtitle Edit 5 makes by default (SpeechToTextViewModel.GetFfmpegTranscodeFormatString, "mp3"):
    16 kHz mono MP3 at 32 kbit/s, named by a GUID."""
    mp3 = wav.with_name("0f8fad5b-d9cb-469f-a165-70867728950e.mp3")
    ffmpeg(
        "-i",
        str(wav),
        "-vn",
        "-ar",
        "16000",
        "-ac",
        "1",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "32k",
        "-f",
        "mp3",
        str(mp3),
    )
    return mp3


def test_subtitle_edit_request_gets_subtitle_sized_segments_with_the_words(heard, short_talk):
    """SE 5's OpenAI-compatible request as its OpenAiSttService sends it (verbose_json, both timestamp
    granularities, the mp3 part last), after its HEAD probe; one subtitle per segment, as SE makes them."""
    import urllib.request

    from tests.test_subtitle_edit import SE_FIELDS, dotnet_multipart

    asr, aligner = heard
    t, wav, _ = short_talk
    mp3 = se_mp3(wav)
    with ServerProcess("--model", asr, "--aligner", aligner) as server:
        probe = urllib.request.Request(server.url + "/", method="HEAD")
        with urllib.request.urlopen(probe, timeout=8) as r:
            assert r.status == 200
        body, ctype = dotnet_multipart(SE_FIELDS, mp3.read_bytes(), mp3.name, "audio/mpeg")
        request = urllib.request.Request(f"{server.url}/v1/audio/transcriptions", data=body, method="POST")
        request.add_header("Content-Type", ctype)
        with urllib.request.urlopen(request, timeout=300) as r:
            reply = json.loads(r.read())
    segments = reply["segments"]
    assert len(segments) >= 8
    for s in segments:
        assert isinstance(s["id"], int) and isinstance(s["seek"], int)  # else SE reads the body as plain text
        rules = rules_for(s.get("language"), s["text"])
        assert s["end"] - s["start"] <= rules.max_duration_seconds + 1e-3, s
        assert width(s["text"].replace("\n", ""), rules.cjk) <= rules.max_lines * rules.max_line_chars, s
    for language in ("English", "Chinese"):
        said = [u for s in segments for u in units(s["text"], language)]
        print("serve", language, round(error_rate(t.text(language), said), 3))
        assert error_rate(t.text(language), said) <= TALK_BAR[language], language


def sentences(t: speech.Talk) -> list[tuple[str, list]]:
    """The talk's sentences (units parted by pauses of 0.25 s or more): (language, units)."""
    out: list[tuple[str, list]] = []
    for language, w in t.words:
        if out and out[-1][0] == language and w.start - out[-1][1][-1].end < 0.25:
            out[-1][1].append(w)
        else:
            out.append((language, [w]))
    return out


def test_subtitle_edit_plugin_retranscribes_the_selected_lines(heard, short_talk, tmp_path):
    """A subtitle timed to the talk's sentences with placeholder text; the plugin, run as SE runs it with
    lines selected, writes what is said into those lines and leaves the others as they were."""
    from tests.test_subtitle_edit import PLUGIN, headless, se_request

    asr, aligner = heard
    t, _, video = short_talk
    lines = sentences(t)

    def stamp(x: float) -> str:
        ms = round(x * 1000)
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    subrip = "".join(
        f"{i + 1}\n{stamp(ws[0].start)} --> {stamp(ws[-1].end)}\n(line {i + 1})\n\n"
        for i, (_, ws) in enumerate(lines)
    )
    english = [i for i, (language, _) in enumerate(lines) if language == "English"]
    chinese = [i for i, (language, _) in enumerate(lines) if language == "Chinese"]
    selected = [english[1], english[2], chinese[1]]
    request = se_request(tmp_path, str(video), {"model": asr, "aligner": aligner})
    data = json.loads(request.read_text(encoding="utf-8-sig"))
    data["subtitle"]["subRip"] = data["subtitle"]["native"] = subrip.replace("\n", "\r\n")
    data["selectedIndices"] = selected
    request.write_text(json.dumps(data), encoding="utf-8")
    run = subprocess.run([PLUGIN, str(request)], capture_output=True, text=True, cwd=tmp_path, env=headless())
    assert run.returncode == 0, run.stderr
    response = json.loads((request.parent / "response.json").read_text(encoding="utf-8"))
    assert response["status"] == "ok", response["message"]
    subs = pysubs2.SSAFile.from_string(response["subtitle"]["native"], format_="srt")
    assert len(subs) == len(lines)
    for i, cue in enumerate(subs):
        if i not in selected:
            assert cue.plaintext == f"(line {i + 1})"
    for language, picked in (("English", selected[:2]), ("Chinese", selected[2:])):
        truth = [w.word for i in picked for w in lines[i][1]]
        said = [u for i in picked for u in units(subs[i].plaintext, language)]
        print("se plugin", language, round(error_rate(truth, said), 3), said)
        assert error_rate(truth, said) <= TALK_BAR[language], (truth, said)


def test_ffmpeg_host_muxes_a_track_with_the_words_at_their_times(heard, short_talk, tmp_path):
    from qwen3asr_plugin.hosts.ffmpeg import run as ffmpeg_run

    asr, aligner = heard
    t, _, video = short_talk
    out = tmp_path / "film.subs.mkv"
    assert (
        ffmpeg_run(["-i", str(video), "--model", asr, "--aligner", aligner, "--device", "cpu", str(out)]) == 0
    )
    ffmpeg("-i", str(out), "-map", "0:s:0", str(tmp_path / "track.srt"))
    cues = pysubs2.load(str(tmp_path / "track.srt"))
    assert len(cues) >= 8
    spoken = [w for _, w in t.words]
    placed = total = 0
    for cue in cues:
        for unit in shown_words(cue.plaintext):
            total += 1
            placed += any(
                w.word == unit and cue.start / 1000 - SLACK <= w.start and w.end <= cue.end / 1000 + SLACK
                for w in spoken
            )
    print("ffmpeg", placed, total, len(spoken))
    assert total >= 0.35 * len(spoken) and placed >= PLACED_BAR * total, (placed, total, len(spoken))


def test_every_precision_of_the_converter_still_hears(heard, tmp_path):
    """The trained checkpoint through `qwen3asr convert` at every encoder precision and decoder type: the
    held-out error stays within 12 points of the exact f32 conversion (measured: at most 3 points worse) (a converter that garbles weights in
    one type hears nothing)."""
    from qwen3asr_plugin import ASRModel

    folder = convert(
        TRAINED / "asr",
        tmp_path / "all",
        encoder_precisions=("fp32", "fp16", "int8"),
        decoder_quants=("f32", "f16", "bf16", "q8_0"),
    )
    utterances = list(speech.dataset("heldout", 12))

    def rate(**choice) -> float:
        model = ASRModel(folder, aligner=False, device="cpu", **choice)
        errors = total = 0
        for u in utterances:
            segments, _ = model.transcribe(u.audio)
            truth = units(u.text, u.language)
            errors += edit_distance(truth, units("".join(s.text for s in segments), u.language))
            total += len(truth)
        return errors / total

    exact = rate(encoder_precision="fp32", decoder_quant="f32")
    figures = {
        (encoder, decoder): rate(encoder_precision=encoder, decoder_quant=decoder)
        for encoder, decoder in [
            ("fp16", "f32"),
            ("int8", "f32"),
            ("fp32", "f16"),
            ("fp32", "bf16"),
            ("fp32", "q8_0"),
        ]
    }
    print("precisions", round(exact, 3), {k: round(v, 3) for k, v in figures.items()})
    assert exact < 0.7
    assert all(value <= exact + 0.12 for value in figures.values()), (exact, figures)
