"""One runner for every front end: the same input with a replacement table gives the same cues and text through
the CLI, the server (srt, verbose_json and SSE), the ffmpeg host, the Subtitle Edit plugin, mpv (the real
player running the Lua script) and the Python API;
and the runner itself: events once each, cancellation, truncated input, progressive snapshots."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from dataclasses import replace
from pathlib import Path

import numpy as np
import pysubs2
import pytest
from scipy.io import wavfile

from qwen3asr_plugin import Segment, TranscriptionInfo, hookimpl
from qwen3asr_plugin.api import (
    RunOptions,
    Transcription,
    load_engine,
    render_subtitles,
    transcribe_to_transcript,
)
from qwen3asr_plugin.engine.errors import Qwen3ASRError
from qwen3asr_plugin.engine.records import Word, join_texts
from qwen3asr_plugin.engine.writers import clean
from qwen3asr_plugin.plugins import pm
from qwen3asr_plugin.runner import Cancelled
from tests.fixtures.trained import speech
from tests.media import write_wav
from tests.parity import speech_like
from tests.server_process import QWEN3ASR, ServerProcess
from tests.test_subtitle_edit import dotnet_multipart

# The tests' audio is a speech-like tone, not speech: Silero VAD (the default) would leave none of it.
SPEECH_LIKE = RunOptions(vad_filter=False)


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    """35 s of speech-like audio: two engine chunks, so several segments and cues."""
    folder = tmp_path_factory.mktemp("runner")
    path = folder / "talk.wav"
    wavfile.write(path, 16_000, speech_like(16_000 * 35, seed=3))
    return path


@pytest.fixture(scope="module")
def engine(models):
    return load_engine("local", model=str(models("tiny")), aligner=str(models("aligner-tiny")), device="cpu")


@pytest.fixture(scope="module")
def table(engine, talk, tmp_path_factory):
    """A replacement table that hits this model's output: its first word becomes «REPLACED»."""
    raw = transcribe_to_transcript(engine, talk, SPEECH_LIKE)
    first = raw.segments[0].text.split()[0]
    assert first.strip()
    path = tmp_path_factory.mktemp("table") / "table.tsv"
    path.write_text(f"# the first word\n{first}\t«REPLACED»\n", encoding="utf-8")
    return path, [(first, "«REPLACED»")], raw


def cues_of_srt(text: str) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.plaintext) for e in pysubs2.SSAFile.from_string(text, format_="srt")]


def flat(text: str) -> str:
    return "".join(text.split())


def post(url: str, fields: list[tuple[str, str]], audio: bytes) -> str:
    body, ctype = dotnet_multipart(fields, audio)
    req = urllib.request.Request(f"{url}/v1/audio/transcriptions", data=body, method="POST")
    req.add_header("Content-Type", ctype)
    with urllib.request.urlopen(req, timeout=300) as r:
        return r.read().decode("utf-8")


def test_every_front_end_gives_the_same_cues_and_text(models, engine, talk, table, tmp_path):
    path, pairs, raw = table
    model, aligner = str(models("tiny")), str(models("aligner-tiny"))

    # The Python API: the runner, then a registered writer.
    api = transcribe_to_transcript(engine, talk, replace(SPEECH_LIKE, postprocess={"replacements": pairs}))
    assert "«REPLACED»" in api.text and api.text != raw.text
    expected = cues_of_srt(render_subtitles(api, "srt"))
    assert expected and any("«REPLACED»" in c[2] for c in expected)
    results = {}

    # the same model, aligner, table and (for the tone) no VAD for every front end that takes arguments
    engine_args = [
        "--model",
        model,
        "--aligner",
        aligner,
        "--device",
        "cpu",
        "--no-vad",
        "--replace",
        str(path),
    ]

    # The CLI batch.
    cli = subprocess.run(
        [QWEN3ASR, "transcribe", str(talk), *engine_args]
        + ["-f", "srt,json", "-o", str(tmp_path / "cli"), "--quiet"],
        capture_output=True,
        text=True,
    )
    assert cli.returncode == 0, cli.stderr
    results["cli"] = cues_of_srt((tmp_path / "cli" / "talk.srt").read_text(encoding="utf-8"))
    data = json.loads((tmp_path / "cli" / "talk.json").read_text(encoding="utf-8"))
    # (written text is cleaned of control characters, which the random model can say: engine/writers.py)
    assert join_texts(s["text"] for s in data["segments"]) == join_texts(clean(s.text) for s in api.segments)

    # The ffmpeg host, writing a sidecar.
    from qwen3asr_plugin.hosts.ffmpeg import run as ffmpeg_run

    out = tmp_path / "ffmpeg.srt"
    code = ffmpeg_run(["-i", str(talk), *engine_args, str(out)])
    assert code == 0
    results["ffmpeg"] = cues_of_srt(out.read_text(encoding="utf-8"))

    # The Subtitle Edit plugin, on a request.json.
    from qwen3asr_plugin.hosts.subtitle_edit import run as se_run

    request = tmp_path / "request.json"
    settings = {"model": model, "aligner": aligner, "replacements": str(path), "vad": False}
    request.write_text(
        json.dumps(
            {"apiVersion": 1, "responseFilePath": str(tmp_path / "response.json"), "videoFileName": str(talk)}
            | {"settings": settings}
        ),
        encoding="utf-8",
    )
    assert se_run(str(request)) == 0
    response = json.loads((tmp_path / "response.json").read_text(encoding="utf-8"))
    assert response["status"] == "ok", response
    results["subtitle-edit"] = cues_of_srt(response["subtitle"]["native"])

    # The server: srt, verbose_json (cues as segments) and SSE.
    audio = talk.read_bytes()
    with ServerProcess("--no-vad", "--model", model, "--aligner", aligner, "--replace", str(path)) as server:
        results["serve srt"] = cues_of_srt(post(server.url, [("response_format", "srt")], audio))
        verbose = json.loads(
            post(
                server.url,
                [("response_format", "verbose_json"), ("timestamp_granularities[]", "word")],
                audio,
            )
        )
        stream = post(server.url, [("response_format", "json"), ("stream", "true")], audio)
    assert verbose["text"] == api.text
    results["serve verbose_json"] = [
        (round(s["start"] * 1000), round(s["end"] * 1000), s["text"]) for s in verbose["segments"]
    ]
    done = [json.loads(line[5:]) for line in stream.splitlines() if line.startswith("data:")][-1]
    assert done["type"] == "transcript.text.done" and done["text"] == api.text
    results["serve SSE"] = [
        (round(s["start"] * 1000), round(s["end"] * 1000), s["text"]) for s in done["segments"]
    ]

    # mpv: the Lua script runs the CLI with --progressive for the playing file; its finished file.
    if shutil.which("mpv"):
        results["mpv"] = cues_of_srt(mpv_subtitles(talk, model, aligner, path, tmp_path))

    # SubRip drops what looks like markup (this random model says things like <r874>), so SubRip results are
    # compared with SubRip, JSON ones with the cues themselves.
    cues = [(round(c.start * 1000), round(c.end * 1000), join_texts(c.lines)) for c in api.cues]
    assert len(cues) == len(expected) >= 2
    for name, got in results.items():
        want = cues if name.startswith("serve ") and "srt" not in name else expected
        assert [(start, end) for start, end, _ in got] == [(start, end) for start, end, _ in want], name
        assert [flat(text) for *_, text in got] == [flat(text) for *_, text in want], name


def mpv_subtitles(media: Path, model: str, aligner: str, table: Path, folder: Path) -> str:
    """The subtitle file the mpv host leaves in `out_dir` for `media`, from the start, with the real mpv."""
    from qwen3asr_plugin.hosts.mpv import script_path
    from tests.mpv_ipc import Mpv
    from tests.test_mpv import wait_for

    out_dir = folder / "mpv-out"
    out_dir.mkdir()
    opts = ",".join(
        [
            f"qwen3asr-command={QWEN3ASR}",
            f"qwen3asr-model={model}",
            f"qwen3asr-aligner={aligner}",
            "qwen3asr-from_position=no",
            f"qwen3asr-out_dir={out_dir}",
            f"qwen3asr-extra_args=--device cpu --no-vad --replace {table}",
        ]
    )
    mpv = Mpv(folder / "mpv.sock", f"--script={script_path()}", f"--script-opts={opts}")
    try:
        mpv.command("loadfile", str(media))
        assert wait_for(lambda: mpv.get("duration"), 20, mpv)
        mpv.command("script-message-to", "qwen3asr", "generate")
        assert wait_for(lambda: mpv.messages("qwen3asr-done"), 120, mpv), mpv.messages("qwen3asr-failed")
        return Path(mpv.messages("qwen3asr-done")[0][0]).read_text(encoding="utf-8")
    finally:
        mpv.close()


class Recorder:
    """A plugin registered for one test: it records every event it hears."""

    def __init__(self, cancel_after: int | None = None):
        self.events: list[tuple] = []
        self.cancel_after = cancel_after

    @hookimpl
    def on_progress(self, source, seconds, duration):
        self.events.append(("progress", round(seconds, 3)))

    @hookimpl
    def on_segment(self, source, segment):
        self.events.append(("segment", segment.text))

    @hookimpl
    def on_language(self, source, language):
        self.events.append(("language", language))

    @hookimpl
    def on_complete(self, source, outputs, info):
        self.events.append(("complete", tuple(outputs)))

    @hookimpl
    def on_failure(self, source, error):
        self.events.append(("failure", str(error)))

    @hookimpl
    def should_cancel(self, source):
        progress = sum(1 for e in self.events if e[0] == "progress")
        return True if self.cancel_after is not None and progress >= self.cancel_after else None


@pytest.fixture
def recorder():
    made = []

    def make(**kwargs):
        r = Recorder(**kwargs)
        pm.register(r)
        made.append(r)
        return r

    yield make
    for r in made:
        pm.unregister(r)


class ScriptedEngine:
    """An Engine whose segments and info are given; it reports progress after each segment."""

    def __init__(self, segments, duration):
        self.segments, self.duration = segments, duration
        self.calls: list[dict] = []

    def transcribe(self, source, **keywords):
        self.calls.append(keywords)
        info = TranscriptionInfo(None, 0.0)

        def stream():
            for s in self.segments:
                keywords["on_progress"](s.end)
                if info.language is None:
                    info.language = s.language
                yield s
            info.duration = self.duration

        return stream(), info


SEGMENTS = [
    Segment(0, 10.0, 12.0, "later words", "English"),
    Segment(1, 0.5, 2.0, "first words", "English"),
    Segment(2, 20.0, 21.0, "再见", "Chinese"),
]


def test_events_are_sent_once_each_and_segments_come_out_in_time_order(recorder, tmp_path):
    r = recorder()
    transcript = transcribe_to_transcript(
        ScriptedEngine(SEGMENTS, 22.0), tmp_path / "x.wav", write=lambda t: [tmp_path / "x.srt"]
    )
    assert [s.start for s in transcript.segments] == [0.5, 10.0, 20.0]
    assert transcript.text == "first words later words再见"
    assert r.events == [
        ("progress", 12.0),
        ("language", "English"),
        ("segment", "later words"),
        ("progress", 2.0),
        ("segment", "first words"),
        ("progress", 21.0),
        ("language", "Chinese"),
        ("segment", "再见"),
        ("complete", (str(tmp_path / "x.srt"),)),
    ]
    assert [c.language for c in transcript.cues][-1] == "Chinese"


def test_the_runner_passes_exactly_the_engine_protocol(tmp_path):
    from qwen3asr_plugin.runner import ENGINE_KEYWORDS

    engine = ScriptedEngine(SEGMENTS[:1], 12.0)
    options = RunOptions(language="English", context="names", audio_track=1, batch_size=2, start_seconds=3.0)
    transcribe_to_transcript(engine, tmp_path / "x.wav", options)
    (call,) = engine.calls
    assert set(call) == set(ENGINE_KEYWORDS)
    assert (call["language"], call["context"], call["audio_track"], call["batch_size"]) == (
        "English",
        "names",
        1,
        2,
    )
    assert call["start_seconds"] == 3.0 and callable(call["on_progress"])


def test_should_cancel_stops_the_run_and_nothing_is_written(recorder, tmp_path):
    r = recorder(cancel_after=1)
    written = []
    with pytest.raises(Cancelled):
        transcribe_to_transcript(ScriptedEngine(SEGMENTS, 22.0), tmp_path / "x.wav", write=written.append)
    assert written == [] and [e[0] for e in r.events] == ["progress", "failure"]


def test_front_end_stop_condition_cancels_between_chunks(tmp_path):
    asked = []

    def stop():
        asked.append(True)
        return len(asked) >= 2

    run = Transcription(ScriptedEngine(SEGMENTS, 22.0), tmp_path / "x.wav", should_stop=stop)
    with pytest.raises(Cancelled):
        list(run)
    assert len(run.segments) == 1


def test_truncated_input_is_refused(recorder, tmp_path):
    """A file that announces more audio than it holds: the runner refuses it, whatever the front end."""
    src = tmp_path / "cut.wav"
    wavfile.write(src, 16_000, speech_like(16_000 * 20))
    engine = ScriptedEngine([Segment(0, 0.0, 1.0, "a few words", "English")], duration=8.0)
    r = recorder()
    with pytest.raises(Qwen3ASRError, match="truncated or damaged"):
        transcribe_to_transcript(engine, src)
    assert r.events[-1][0] == "failure"


def test_snapshot_is_the_transcript_so_far(tmp_path):
    run = Transcription(ScriptedEngine(SEGMENTS, 22.0), tmp_path / "x.wav")
    assert run.snapshot().segments == ()
    stream = iter(run)
    next(stream)
    partial = run.snapshot()
    assert [s.text for s in partial.segments] == ["later words"] and partial.cues
    final = run.finish()
    assert [s.text for s in final.segments] == ["first words", "later words", "再见"]


def test_postprocess_hooks_get_only_the_arguments_they_declare(tmp_path):
    class Minimal:
        @hookimpl
        def postprocess_segment(self, segment):
            return Segment(segment.id, segment.start, segment.end, segment.text.upper(), segment.language)

        @hookimpl
        def postprocess_cues(self, cues):
            return [c for c in cues if "LATER" not in c.text]

    plugin = Minimal()
    pm.register(plugin)
    try:
        transcript = transcribe_to_transcript(ScriptedEngine(SEGMENTS[:2], 22.0), tmp_path / "x.wav")
    finally:
        pm.unregister(plugin)
    assert [s.text for s in transcript.segments] == ["FIRST WORDS", "LATER WORDS"]
    assert [c.text for c in transcript.cues] == ["FIRST WORDS"]


def test_array_input_still_works_through_the_model_api(engine):
    segments, info = engine.transcribe(
        np.asarray(speech_like(16_000 * 2)), language="English", vad_filter=False
    )
    assert all(s.language == "English" for s in segments) and info.duration == pytest.approx(2.0)


def test_the_readme_runner_example_runs(models, tmp_path, capsys):
    """The Python example under README "Plugins", run as written but for the model and the audio file."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    code = readme.split("From Python:\n\n```python\n", 1)[1].split("```", 1)[0]
    assert 'model="qwen3-asr-0.6b"' in code and '"talk.wav"' in code
    code = code.replace('model="qwen3-asr-0.6b"', f'model={str(models("tiny"))!r}, device="cpu"')
    said = write_wav(tmp_path / "talk.wav", speech.talk([("English", 40)], seed=4).audio)  # speech: VAD on
    exec(code.replace('"talk.wav"', repr(str(said))), {})
    srt = capsys.readouterr().out
    assert len(cues_of_srt(srt)) >= 2


def failing_after_first(segment):
    """An engine that gives one segment, then fails as a damaged file does."""

    class Failing(ScriptedEngine):
        def transcribe(self, source, **keywords):
            stream, info = super().transcribe(source, **keywords)

            def broken():
                yield next(stream)
                raise Qwen3ASRError(f"{source}: not a media file ffmpeg can read")

            return broken(), info

    return Failing([segment, segment], 5.0)


def json_events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_batch_progressive_outputs_and_failures(tmp_path, capsys):
    """--progressive without --overwrite completes; a failing input leaves no progressive file of its own and
    is reported once; an existing output is reported once and kept; the batch goes on after each."""
    from qwen3asr_plugin.batch import BatchOptions, JsonReporter, transcribe_files

    good = ScriptedEngine(SEGMENTS[:2], 22.0)
    options = BatchOptions(formats=["srt", "txt"], progressive=True)
    summary = transcribe_files(good, [tmp_path / "a.wav"], options, JsonReporter())
    assert summary["failed"] == 0 and (tmp_path / "a.srt").exists() and (tmp_path / "a.txt").exists()
    updates = [e for e in json_events(capsys.readouterr().out) if e["event"] == "update"]
    assert [e["segments"] for e in updates] == [1, 2]

    bad = failing_after_first(SEGMENTS[1])
    (tmp_path / "keep.srt").write_text("a subtitle made by hand\n", encoding="utf-8")
    inputs = [tmp_path / "b.wav", tmp_path / "keep.wav", tmp_path / "c.wav"]
    summary = transcribe_files(bad, inputs, options, JsonReporter())
    events = json_events(capsys.readouterr().out)
    errors = [e for e in events if e["event"] == "error"]
    assert [Path(e["input"]).name for e in errors] == ["b.wav", "keep.wav", "c.wav"]
    assert "exists; use --overwrite" in errors[1]["message"]
    assert [e["segments"] for e in events if e["event"] == "update"] == [1, 1]  # b and c got that far
    assert summary["failed"] == 3
    assert not (tmp_path / "b.srt").exists() and not (tmp_path / "c.srt").exists()
    assert (tmp_path / "keep.srt").read_text(encoding="utf-8") == "a subtitle made by hand\n"


def test_listeners_hear_only_their_own_run(tmp_path):
    heard = {"a": Recorder(), "b": Recorder()}
    run_a = Transcription(ScriptedEngine(SEGMENTS[:1], 22.0), tmp_path / "a.wav", listeners=[heard["a"]])
    run_b = Transcription(ScriptedEngine(SEGMENTS[1:2], 22.0), tmp_path / "b.wav", listeners=[heard["b"]])
    stream_a, stream_b = iter(run_a), iter(run_b)
    next(stream_a), next(stream_b)  # interleaved, as two server requests or threads would be
    run_a.finish(), run_b.finish()
    assert [e for e in heard["a"].events if e[0] == "segment"] == [("segment", "later words")]
    assert [e for e in heard["b"].events if e[0] == "segment"] == [("segment", "first words")]


def test_finish_after_a_failed_iteration_raises_and_completes_nothing(recorder, tmp_path):
    r = recorder()
    run = Transcription(failing_after_first(SEGMENTS[0]), tmp_path / "x.wav")
    with pytest.raises(Qwen3ASRError):
        list(run)
    with pytest.raises(Qwen3ASRError):
        run.finish()
    assert [e[0] for e in r.events].count("failure") == 1 and "complete" not in [e[0] for e in r.events]


def test_subtitle_edit_settings_reach_the_engine_and_the_run(tmp_path, monkeypatch):
    """Cleared fields mean defaults, `aligner: false` means none, `itn` rewrites Chinese numbers."""
    import qwen3asr_plugin.hosts.subtitle_edit as se

    asked = {}

    def load_engine(name, **options):
        asked.update(options, engine=name)
        return ScriptedEngine([Segment(0, 1.0, 3.0, "一百二十三个人", "Chinese")], 4.0)

    monkeypatch.setattr(se, "load_engine", load_engine)
    request = tmp_path / "request.json"
    settings = {"model": "", "aligner": False, "endpoint": None, "itn": True, "language": None}
    request.write_text(
        json.dumps({"responseFilePath": str(tmp_path / "response.json"), "videoFileName": "x.mp4"})[:-1]
        + f', "settings": {json.dumps(settings)}}}',
        encoding="utf-8",
    )
    assert se.run(str(request)) == 0
    response = json.loads((tmp_path / "response.json").read_text(encoding="utf-8"))
    assert response["status"] == "ok", response
    assert asked == {"engine": "local", "aligner": False}
    assert "123个人" in response["subtitle"]["native"]


def test_gaps_come_in_the_order_a_player_wants_them():
    from qwen3asr_plugin.runner import gaps

    assert gaps([], 100.0, 40.0) == [(40.0, 100.0), (0.0, 40.0)]
    assert gaps([(30.0, 50.0), (49.0, 60.0)], 100.0, 80.0) == [(80.0, 100.0), (0.0, 30.0), (60.0, 80.0)]
    assert gaps([(30.0, 50.0)], 100.0, 40.0) == [(50.0, 100.0), (0.0, 30.0)]  # start inside a done range
    assert gaps([(0.0, 99.8)], 100.0) == []  # slivers under half a second are not worth a run


class WindowEngine:
    """An Engine with end_seconds: one segment per 10 s of the window asked for, progress after each; it
    records the windows it was asked for."""

    def __init__(self, duration: float):
        self.duration, self.windows = duration, []

    def transcribe(self, source, *, start_seconds=None, end_seconds=None, on_progress=None, **keywords):
        a, b = start_seconds or 0.0, self.duration if end_seconds is None else end_seconds
        self.windows.append((a, b))
        info = TranscriptionInfo("English", self.duration)

        def stream():
            at = a
            while at < b - 1e-9:
                end = min(b, at + 10.0)
                on_progress(end)
                yield Segment(0, at, end, f"words {at:g}", "English", words=(Word(at, end, f"words {at:g}"),))
                at = end

        return stream(), info


def test_a_resumed_run_keeps_what_is_done_and_transcribes_only_the_rest(tmp_path, monkeypatch):
    from qwen3asr_plugin import runner
    from qwen3asr_plugin.runner import Resume, RunOptions, Transcription

    monkeypatch.setattr(runner, "announced_duration", lambda source: 60.0)
    earlier = (
        Segment(0, 20.0, 30.0, "kept 20", "English", words=(Word(20.0, 30.0, "kept 20"),)),
        # written just before the run stopped, its range not yet recorded: decoded again, not kept twice
        Segment(1, 50.0, 52.0, "stray 50", "English", words=(Word(50.0, 52.0, "stray 50"),)),
    )
    engine = WindowEngine(60.0)
    run = Transcription(
        engine,
        tmp_path / "x.wav",
        RunOptions(vad_filter=False, start_seconds=45.0, resume=Resume(((20.0, 30.0),), earlier)),
    )
    transcript = run.finish()
    assert engine.windows == [(45.0, 60.0), (0.0, 20.0), (30.0, 45.0)]
    assert [s.text for s in transcript.segments] == [
        "words 0",
        "words 10",
        "kept 20",
        "words 30",
        "words 40",
        "words 45",
        "words 55",
    ]
    assert run.done == [(0.0, 60.0)] and transcript.duration == 60.0
    assert len({s.id for s in transcript.segments}) == 7


def test_a_resumed_run_with_an_engine_without_windows_starts_afresh(tmp_path):
    from qwen3asr_plugin.runner import Resume, RunOptions, Transcription

    kept = (Segment(0, 5.0, 6.0, "kept", "English"),)
    run = Transcription(
        ScriptedEngine(SEGMENTS, 22.0), tmp_path / "x.wav", RunOptions(resume=Resume(((5.0, 6.0),), kept))
    )
    assert [s.text for s in run.finish().segments] == ["first words", "later words", "再见"]


def test_start_seconds_transcribes_from_there_then_the_beginning(models, tmp_path):
    """mpv's "start where you are" without a resumed transcript: the engine's first segments are from the
    position on, then the beginning follows; ids run on across both passes and progress counts up to the
    whole length."""
    from qwen3asr_plugin.api import ASRModel

    wav = tmp_path / "talk.wav"
    wavfile.write(wav, 16_000, (speech_like(16_000 * 50, seed=8) * 32767).astype(np.int16))
    model = ASRModel(models("tiny"), aligner=False, device="cpu")
    seen: list[float] = []
    segments, info = model.transcribe(
        wav, start_seconds=30.0, batch_size=1, on_progress=seen.append, vad_filter=False
    )
    segments = list(segments)
    starts = [s.start for s in segments]
    after = [t >= 30.0 - 1e-6 for t in starts]
    assert after[0] and not after[-1]  # from the position first, the beginning last
    assert after == sorted(after, reverse=True)  # one switch: nothing after 30 s once the beginning started
    assert [s.id for s in segments] == list(range(len(segments)))
    assert seen == sorted(seen) and seen[-1] == pytest.approx(50.0, abs=0.5)
    assert info.duration == pytest.approx(50.0, abs=0.1)


def test_time_offset_moves_every_time(models, tmp_path):
    """--time-offset: segments, words and cues all move by it (a recording that began partway into what a
    player shows), and no cue is cut at the recording's own length."""
    from qwen3asr_plugin.api import ASRModel

    wav = tmp_path / "rec.wav"
    wavfile.write(wav, 16_000, (speech_like(16_000 * 12, seed=4) * 32767).astype(np.int16))
    model = ASRModel(models("tiny"), aligner=models("aligner-tiny"), device="cpu")
    plain = transcribe_to_transcript(model, wav, SPEECH_LIKE)
    moved = transcribe_to_transcript(model, wav, replace(SPEECH_LIKE, time_offset=100.0))
    assert plain.segments and len(moved.segments) == len(plain.segments)
    for a, b in zip(plain.segments, moved.segments, strict=True):
        assert (b.start, b.end) == (pytest.approx(a.start + 100), pytest.approx(a.end + 100))
        assert [(w.start, w.end) for w in b.words] == [
            (pytest.approx(w.start + 100), pytest.approx(w.end + 100)) for w in a.words
        ]
    assert [(c.start, c.end, c.text) for c in moved.cues] == [
        (pytest.approx(c.start + 100), pytest.approx(c.end + 100), c.text) for c in plain.cues
    ]
    assert moved.duration == pytest.approx(plain.duration + 100)


def test_an_engine_written_before_vad_parameters_still_runs(tmp_path):
    """A plugin's engine with the Engine protocol as it was (no `vad_parameters`) gets every other keyword."""

    class Before(ScriptedEngine):
        def transcribe(
            self, source, *, language, context, audio_track, vad_filter, temperature_fallback,
            start_seconds, batch_size, first_batch_size, on_progress,
        ):  # fmt: skip
            return super().transcribe(
                source, language=language, context=context, audio_track=audio_track, vad_filter=vad_filter,
                temperature_fallback=temperature_fallback, start_seconds=start_seconds, batch_size=batch_size,
                first_batch_size=first_batch_size, on_progress=on_progress,
            )  # fmt: skip

    engine = Before(SEGMENTS[:1], 22.0)
    transcript = transcribe_to_transcript(
        engine, tmp_path / "x.wav", RunOptions(vad_parameters={"threshold": 0.6})
    )
    assert transcript.text == "later words" and engine.calls[0]["vad_filter"] is True
    assert "vad_parameters" not in engine.calls[0]
    full = ScriptedEngine(SEGMENTS[:1], 22.0)  # one that takes them gets them
    transcribe_to_transcript(full, tmp_path / "x.wav", RunOptions(vad_parameters={"threshold": 0.6}))
    assert full.calls[0]["vad_parameters"] == {"threshold": 0.6}
