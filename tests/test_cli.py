"""`qwen3asr transcribe` on bad input: one line per problem, the batch goes on, non-zero exit at the end."""

import subprocess
import sys
from pathlib import Path

from scipy.io import wavfile

from tests.parity import speech_like

QWEN3ASR = str(Path(sys.executable).parent / "qwen3asr")


def test_bad_inputs_are_reported_and_the_batch_goes_on(tiny_model, tmp_path):
    good = tmp_path / "good one.wav"
    wavfile.write(good, 16_000, speech_like(16_000))
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    run = subprocess.run(
        [
            QWEN3ASR,
            "transcribe",
            str(tmp_path / "missing.wav"),
            str(text),
            str(good),
            "--model",
            str(tiny_model),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    errors = run.stderr.strip().splitlines()
    assert "Traceback" not in run.stderr
    assert any("missing.wav: no such file" in line for line in errors)
    assert any("notes.wav" in line for line in errors)
    assert errors[-1] == "qwen3asr: 2 of 3 inputs failed"
    assert (tmp_path / "good one.srt").exists()
    assert not (tmp_path / "notes.srt").exists() and not (tmp_path / "missing.srt").exists()


def test_wrong_model_kind_and_language(tiny_model, tmp_path):
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16_000, speech_like(16_000))
    run = subprocess.run(
        [QWEN3ASR, "transcribe", str(wav), "--model", str(tiny_model), "--language", "xx"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "unknown language 'xx'" in run.stderr
    assert "Traceback" not in run.stderr


def test_aligner_given_as_asr_model(tmp_path):
    from qwen3asr_plugin.engine.convert import convert
    from tests.fixtures.checkpoint import make_checkpoint

    aligner = convert(make_checkpoint(tmp_path / "al", "aligner-tiny"), tmp_path / "alm", decoder_quants=[])
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16_000, speech_like(16_000))
    run = subprocess.run(
        [QWEN3ASR, "transcribe", str(wav), "--model", str(aligner)], capture_output=True, text=True
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        f"qwen3asr: error: {aligner}: is a forced-aligner model, not an ASR model; give a Qwen3-ASR model "
        "(e.g. --model qwen3-asr-0.6b)"
    ]


def test_bench_reports_every_stage(models):
    """`qwen3asr bench` on a model folder: each stage with its counts; the forced tokens are all decoded."""
    run = subprocess.run(
        [
            QWEN3ASR,
            "bench",
            "--model",
            str(models("tiny")),
            "--aligner",
            str(models("aligner-tiny")),
            "--seconds",
            "65",
            "--tokens",
            "30",
            "--batch-size",
            "2",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    lines = {line.split()[0]: line for line in run.stdout.splitlines() if line.strip()}
    for stage in ("mel", "encoder", "prefill", "decode", "align", "load", "total"):
        assert stage in lines, run.stdout
    assert "30 tokens" in lines["decode"] and "2 at once" in lines["decode"]  # 3 chunks of 10 tokens
    assert "RTF" in lines["total"] and "peak memory" in lines["total"]
    # Each computing stage beside its floor (engine/floors.py): seconds, share, floor, times the floor.
    for stage in ("encoder", "prefill", "decode", "align"):
        words = lines[stage].split()
        seconds, floor, times = float(words[1]), float(words[3]), float(words[4])
        # (the printed floor is rounded to 10 ms: the ratio is checked where that is precise enough)
        assert times > 0 and (floor < 0.1 or abs(times - seconds / floor) <= 0.1 * times), lines[stage]
    assert "GFLOP/s" in lines["floors:"] and "GB/s" in lines["floors:"]


def test_bad_inputs_without_quiet_as_a_script_runs_it(tiny_model, tmp_path):
    """As a scheduled job runs it: no --quiet, stderr to a file (not a terminal). The progress bar must not
    turn a bad input into a traceback that stops the batch."""
    good = tmp_path / "talk.wav"
    wavfile.write(good, 16_000, speech_like(16_000 * 2))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    log = tmp_path / "log.txt"
    with log.open("w") as stderr:
        run = subprocess.run(
            [
                QWEN3ASR,
                "transcribe",
                str(empty),
                str(tmp_path / "gone.wav"),
                str(good),
                "--model",
                str(tiny_model),
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    said = log.read_text()
    assert run.returncode == 1 and "Traceback" not in said, said
    assert "empty.mp4" in said and "gone.wav: no such file" in said
    assert (tmp_path / "talk.srt").exists()


def test_a_folder_without_media_is_said_before_any_model_loads(tmp_path):
    folder = tmp_path / "notes ü"
    (folder / "sub").mkdir(parents=True)
    (folder / "readme.txt").write_text("no media here")
    (folder / "sub" / "list.srt").write_text("")
    run = subprocess.run(
        [QWEN3ASR, "transcribe", str(folder), "--model", str(tmp_path / "no such model")],
        capture_output=True,
        text=True,
    )
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1 and len(lines) == 1, run.stderr
    assert f"no media files in {folder}" in lines[0] and "no such model" not in lines[0]
    assert sorted(p.name for p in folder.rglob("*")) == ["list.srt", "readme.txt", "sub"]


def test_verbose_shows_the_traceback_and_plain_runs_do_not(tiny_model, tmp_path):
    wav = tmp_path / "a.wav"
    wavfile.write(wav, 16_000, speech_like(16_000))
    common = [QWEN3ASR, "transcribe", str(wav), "--model", str(tiny_model), "--language", "xx"]
    plain = subprocess.run(common, capture_output=True, text=True)
    verbose = subprocess.run([*common, "--verbose"], capture_output=True, text=True)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("qwen3asr: error: unknown language 'xx'")
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert "unknown language 'xx'" in verbose.stderr
    # an error of the whole command (no input to go on with), the option before the command
    empty = tmp_path / "empty"
    empty.mkdir()
    whole = subprocess.run([QWEN3ASR, "--verbose", "transcribe", str(empty)], capture_output=True, text=True)
    assert whole.returncode == 1 and "Traceback (most recent call last)" in whole.stderr
    assert "no media files" in whole.stderr.strip().splitlines()[-1]
