"""Reading any media file ffmpeg can read as 16 kHz mono float32, in blocks so memory stays flat.

ffmpeg comes from $QWEN3ASR_FFMPEG, else PATH, else the binary the imageio-ffmpeg wheel ships, so a plain
`pip install` works on a machine without ffmpeg. Nothing here needs ffprobe (the imageio build has none):
streams and duration are read from `ffmpeg -i`'s own report.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import AudioError

BLOCK_SECONDS = 10.0
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# ffmpeg input options for network sources, as a player sends them (mpv's user-agent and
# http-header-fields); set once by the front end (`--user-agent`, `--http-header`).
NETWORK: dict[str, str] = {}


def is_url(source) -> bool:
    """A URL ffmpeg opens itself (http, https, rtmp, ...); `Path` would mangle it (https:/host/...)."""
    return isinstance(source, str) and bool(URL.match(source))


def set_network_options(user_agent: str | None = None, headers: list[str] | tuple[str, ...] = ()) -> None:
    NETWORK.clear()
    if user_agent:
        NETWORK["user_agent"] = user_agent
    if headers:
        NETWORK["headers"] = "".join(f"{h.strip()}\r\n" for h in headers if h.strip())


def _network(source) -> dict[str, str]:
    return dict(NETWORK) if is_url(str(source)) else {}


# Files still being written (a live stream a player records, a download in progress): read on at their end
# until nothing new arrives for this many seconds (ffmpeg's file protocol: follow=1 with rw_timeout).
FOLLOW: dict[str, float] = {}


def set_follow(seconds: float | None) -> None:
    """Follow growing input files, giving up after `seconds` without new data (None: read to the end)."""
    FOLLOW.clear()
    if seconds:
        FOLLOW["seconds"] = float(seconds)


def _follow(source) -> dict[str, str]:
    if not FOLLOW or is_url(str(source)):
        return {}
    return {"follow": "1", "rw_timeout": str(int(FOLLOW["seconds"] * 1_000_000))}


# A site's page (YouTube and the like) that ffmpeg cannot read, as yt-dlp resolved it: the page URL ->
# (its title, the media URL of the best audio, ffmpeg's network options for it from the site's headers).
SITES: dict[str, tuple[str, str, dict[str, str]]] = {}


def _opened(source) -> tuple[str, dict[str, str]]:
    """What ffmpeg opens for `source`, and with which network options."""
    if str(source) in SITES:
        _, url, network = SITES[str(source)]
        return url, network
    return str(source), _network(source)


@dataclass(frozen=True)
class Fragments:
    """A local playlist (.m3u8) whose segments are all on the network: an optional initialisation segment
    (EXT-X-MAP) and the segments with their lengths (EXTINF), as a player writes down a format a site sends
    in fragments (mpv's ytdl hook: an EDL `!mp4_dash,init=...` of fragment URLs; hosts/mpv/qwen3asr.lua).
    ffmpeg's HLS demuxer does not send the player's headers for the segments of a local playlist (they come
    from the playlist's own connection), so the engine fetches them itself and pipes them to ffmpeg."""

    playlist: str
    init: str | None
    parts: tuple[tuple[str, float], ...]  # (url, seconds)

    def first_part(self, start_seconds: float) -> int:
        """The part holding `start_seconds` by the playlist's lengths (the first when some length is not
        known)."""
        if not all(seconds > 0 for _, seconds in self.parts):
            return 0
        at = 0.0
        for k, (_, seconds) in enumerate(self.parts):
            at += seconds
            if at > start_seconds:
                return k
        return len(self.parts) - 1


_EXTINF = re.compile(r"#EXTINF:\s*([0-9.]+)")
_MAP = re.compile(r'#EXT-X-MAP:.*?URI="([^"]+)"')
_NOT_FRAGMENTS = ("#EXT-X-STREAM-INF", "#EXT-X-MEDIA", "#EXT-X-KEY", "#EXT-X-BYTERANGE", "#EXT-X-I-FRAME")


@lru_cache(maxsize=16)
def _fragment_list(playlist: str, size: int, mtime_ns: int) -> Fragments | None:
    try:
        text = Path(playlist).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    lines = [x.strip() for x in text.splitlines()]
    if "#EXT-X-ENDLIST" not in lines or any(line.startswith(_NOT_FRAGMENTS) for line in lines):
        return None  # a live, master, encrypted or byte-range playlist: ffmpeg's HLS demuxer reads it
    init, parts, length = None, [], None
    for line in lines:
        if m := _MAP.match(line):
            init = m.group(1)
        elif m := _EXTINF.match(line):
            length = float(m.group(1))
        elif line and not line.startswith("#"):
            parts.append((line, length if length is not None else 0.0))
            length = None
    urls = [u for u, _ in parts] + ([init] if init else [])
    if not parts or not all(u.lower().startswith(("http://", "https://")) for u in urls):
        return None  # segments beside the playlist: ffmpeg reads it as HLS itself
    return Fragments(playlist, init, tuple(parts))


def fragments(source) -> Fragments | None:
    """The network fragments a local .m3u8 lists, or None for anything else."""
    if is_url(str(source)) or not str(source).lower().endswith(".m3u8"):
        return None
    path = Path(source)
    if not path.is_file():
        return None
    stat = path.stat()
    return _fragment_list(str(path), stat.st_size, stat.st_mtime_ns)


def _fetch(url: str, playlist: str, timeout: float = 60.0, attempts: int = 3) -> bytes:
    """One fragment, with the player's headers (--user-agent, --http-header); a dropped connection or a
    server error is tried again (after 1 s, then 2 s), a refusal (4xx) is not."""
    import time
    import urllib.error
    import urllib.request

    headers = {}
    if NETWORK.get("user_agent"):
        headers["User-Agent"] = NETWORK["user_agent"]
    for line in NETWORK.get("headers", "").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=timeout
            ) as answer:
                return answer.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            final = isinstance(exc, ValueError) or (
                isinstance(exc, urllib.error.HTTPError) and exc.code < 500
            )
            if final or attempt == attempts - 1:
                raise AudioError(f"{playlist}: a fragment could not be fetched ({url}: {exc})") from None
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


_UNRESOLVED: dict[str, str] = {}  # page URL -> why neither ffmpeg nor yt-dlp could read it (asked once)


def resolve_site(url: str, ffmpeg_said: str = "") -> tuple[str, str, dict[str, str]]:
    """A page URL through yt-dlp (`yt-dlp -J -f bestaudio/best`, the format mpv asks for when video is off):
    its title, the media URL of its best audio and the headers the site wants for it. AudioError when
    yt-dlp is not installed or cannot resolve it (`ffmpeg_said`: why ffmpeg could not read the URL)."""
    import json

    exe = shutil.which("yt-dlp")
    if exe is None:
        raise AudioError(
            f"{url}: not a media file ffmpeg can read{f' ({ffmpeg_said})' if ffmpeg_said else ''}; if it is a "
            "site's page (YouTube and the like), install yt-dlp (pip install yt-dlp)"
        )
    try:
        run = subprocess.run(
            [exe, "--no-warnings", "--no-playlist", "-J", "-f", "bestaudio/best", "--", url],
            capture_output=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        raise AudioError(f"{url}: yt-dlp did not answer within 5 minutes") from None
    said = run.stderr.decode("utf-8", "replace").strip().splitlines()
    try:
        info = json.loads(run.stdout) if run.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise AudioError(f"{url}: yt-dlp could not resolve it ({said[-1] if said else 'no answer'})")
    chosen = info
    for fmt in info.get("requested_formats") or ():
        if fmt.get("acodec") not in (None, "none"):
            chosen = fmt
            break
    media = chosen.get("url")
    if not isinstance(media, str) or not is_url(media):
        raise AudioError(f"{url}: yt-dlp found no audio URL ffmpeg can open")
    headers = dict(chosen.get("http_headers") or info.get("http_headers") or {})
    network: dict[str, str] = {}
    agent = headers.pop("User-Agent", None)
    if agent:
        network["user_agent"] = agent
    if headers:
        network["headers"] = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    title = str(info.get("title") or "").strip()
    return title, media, network


def source_stem(source) -> str:
    """The name outputs take: a file's stem; for a site's page the title yt-dlp gave (made safe for file
    names); else the last part of a URL's path (`stream` when it has none)."""
    if str(source) in SITES and SITES[str(source)][0]:
        name = re.sub(r'[\\/:*?"<>|\x00-\x1f\s]+', " ", SITES[str(source)][0]).strip(" .")
        return name[:120] or "stream"
    if is_url(str(source)):
        from urllib.parse import unquote, urlsplit

        # The path's last segment as sent, then unquoted: an escaped "/" (%2F) is part of the name, not a
        # folder; characters no file name may hold on some system become "_". hosts/mpv/qwen3asr.lua
        # (url_stem) names the same way.
        last = unquote(urlsplit(str(source)).path.rsplit("/", 1)[-1])  # ;params stay in the name
        last = re.sub(r'[\\/:*?"<>|\x00-\x1f\x7f]', "_", last)
        stem = re.match(r"^(.+)\.[^.]*$", last, re.S)
        stem = stem.group(1) if stem else last
        return stem if stem.strip(".") else "stream"
    return Path(source).stem


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """The ffmpeg binary to run."""
    env = os.environ.get("QWEN3ASR_FFMPEG")
    if env:
        return env
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as exc:
        raise AudioError(
            "no ffmpeg found; install it (apt install ffmpeg) or `pip install imageio-ffmpeg`"
        ) from exc


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    duration: float | None  # seconds, when the container says
    audio_streams: int
    video_streams: int
    subtitle_streams: int = 0
    # (index, kind, codec) of every stream, e.g. (2, "Subtitle", "subrip")
    streams: tuple[tuple[int, str, str], ...] = ()
    start: float = 0.0  # the container's first timestamp (MPEG-TS and HLS start at 1.4 s, say)
    format: str = ""  # ffmpeg's demuxer ("hls", "mov,mp4,m4a,3gp,3g2,mj2", "mpegts", ...)


_DURATION = re.compile(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_FORMAT = re.compile(r"Input #0, ([^\n]+?), from ")
_START = re.compile(r"Duration: [^\n]*?, start: (-?\d+(?:\.\d+)?)")
_STREAM = re.compile(
    r"Stream #\d+:(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?: (Audio|Video|Subtitle|Data|Attachment)(?:: (\w+))?"
)


def probe(path: Path | str) -> MediaInfo:
    """Duration and stream counts from `ffmpeg -i` (no ffprobe). Raises AudioError for unreadable input.

    Several layers ask about the same file (batch, API, decoder, ffmpeg host); the answer is cached per
    path, size and modification time, so ffmpeg runs once per file (a URL once per process)."""
    if is_url(str(path)):
        url = str(path)
        if url in _UNRESOLVED:
            raise AudioError(_UNRESOLVED[url])
        if url not in SITES:
            try:
                return _probe(url, -1, 0, tuple(sorted(NETWORK.items())))
            except AudioError as exc:
                if not url.lower().startswith(("http://", "https://")):
                    raise
                said = str(exc).rsplit("(", 1)[-1].rstrip(")") if "(" in str(exc) else ""
                try:
                    SITES[url] = resolve_site(url, said)  # a page: what yt-dlp finds there
                except AudioError as failed:
                    _UNRESOLVED[url] = str(failed)
                    raise
        media, network = _opened(url)
        return replace(_probe(media, -1, 0, tuple(sorted(network.items()))), path=url)
    frags = fragments(path)
    if frags is not None:
        return _probe_fragments(frags)
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder; give an audio or video file")
    stat = path.stat()
    info = _probe(path, stat.st_size, stat.st_mtime_ns)
    # A file still growing has no length yet: what its header or size says now is only where it is so far.
    return replace(info, duration=None) if FOLLOW else info


@lru_cache(maxsize=16)
def _probe_fragments(frags: Fragments) -> MediaInfo:
    """Streams from the initialisation segment and the first part; the length from the playlist's."""
    head = (_fetch(frags.init, frags.playlist) if frags.init else b"") + _fetch(
        frags.parts[0][0], frags.playlist
    )
    try:
        info = _read_report("pipe:0", (), head)
    except AudioError as exc:
        raise AudioError(str(exc).replace("pipe:0", f"{frags.playlist} (its first fragment)", 1)) from None
    lengths = [seconds for _, seconds in frags.parts]
    return replace(info, path=Path(frags.playlist), duration=sum(lengths) if all(lengths) else None)


@lru_cache(maxsize=64)
def _probe(path: Path | str, size: int, mtime_ns: int, network: tuple = ()) -> MediaInfo:
    return _read_report(path, network)


def _read_report(path: Path | str, network: tuple = (), data: bytes | None = None) -> MediaInfo:
    """`ffmpeg -i`'s report of `path` (or of `data` on its standard input, path "pipe:0")."""
    options = [x for key, value in network for x in (f"-{key}", value)]
    run = subprocess.run(
        [
            ffmpeg_exe(),
            "-hide_banner",
            *(() if data is not None else ("-nostdin",)),
            *options,
            "-i",
            str(path),
        ],
        input=data,
        capture_output=True,
    )
    report = run.stderr.decode("utf-8", "replace")
    # ffmpeg may list a stream once per program (MPEG-TS): each index once, in index order
    found = {int(index): (kind, codec) for index, kind, codec in _STREAM.findall(report)}
    streams = tuple((index, *found[index]) for index in sorted(found))
    kinds = [kind for _, kind, _ in streams]
    if not kinds:
        last = report.strip().splitlines()[-1] if report.strip() else "unknown format"
        raise AudioError(f"{path}: not a media file ffmpeg can read ({last.split(': ')[-1]})")
    match = _DURATION.search(report)
    duration = None
    if match:
        h, m, s = match.groups()
        duration = int(h) * 3600 + int(m) * 60 + float(s)
    start = _START.search(report)
    demuxer = _FORMAT.search(report)
    return MediaInfo(
        path,
        duration,
        kinds.count("Audio"),
        kinds.count("Video"),
        kinds.count("Subtitle"),
        streams,
        float(start.group(1)) if start else 0.0,
        demuxer.group(1) if demuxer else "",
    )


def _opus_delay(path, audio_track: int) -> float:
    """Opus in Matroska/WebM starts its timestamps at minus its codec delay (`start: -0.007`); decoding from
    the start drops those samples, so the audio's time 0 is the container's 0, but `-ss X` counts from the
    container's start and so began 7 ms early (every subtitle of a window 7-8 ms late, measured with a click
    at 1 s). The seek is moved by that much; other codecs' negative starts (AAC priming in MP4) are kept in
    both decodes alike and need nothing."""
    if str(path) in SITES:
        return 0.0
    info = probe(path)
    audio = [codec for _, kind, codec in info.streams if kind == "Audio"]
    if info.start < 0 and audio_track < len(audio) and audio[audio_track] == "opus":
        return -info.start
    return 0.0


def decode_command(
    path: Path | str,
    audio_track: int = 0,
    start_seconds: float | None = None,
    duration_seconds: float | None = None,
) -> list[str]:
    """The ffmpeg argv that writes the chosen audio stream (optionally from `start_seconds`, for
    `duration_seconds`) to stdout as 16 kHz mono float32."""
    import ffmpeg

    source, network = _opened(path)
    frags = fragments(path)
    if frags is not None:  # read_blocks pipes the parts from the one holding start_seconds
        source, network = "pipe:0", {}
    if FOLLOW and not is_url(source) and frags is None:
        source = f"file:{Path(source).resolve()}"  # the file protocol's follow option; an absolute path
    window, trim = {}, {}
    if (start_seconds or duration_seconds is not None) and (frags is not None or probe(path).format == "hls"):
        # ffmpeg's seek into HLS lands at a segment's start, up to a segment early (and -ss does not trim
        # it): the window is cut by the audio's own timestamps, kept as they are (-copyts), from the
        # playlist's start. Only there: -copyts also turns off the correction of timestamps that jump
        # (concatenated MPEG-TS, VOB), where -ss/-t are right.
        # Fragments piped from the one holding the start are cut the same way (their timestamps are the
        # stream's own, so nothing depends on the playlist's lengths being exact).
        origin = probe(path).start + (start_seconds or 0.0)
        if frags is None:
            window["ss"] = f"{start_seconds or 0.0:.3f}"
        trim = {"start": f"{origin:.6f}"}
        if duration_seconds is not None:
            trim["end"] = f"{origin + duration_seconds:.6f}"
    else:
        if start_seconds:
            window["ss"] = f"{start_seconds + _opus_delay(path, audio_track):.3f}"
        if duration_seconds is not None:
            window["t"] = f"{duration_seconds:.3f}"
    follow = _follow(path) if frags is None else {}  # the fragments' pipe ends when the list does
    stream = ffmpeg.input(source, **window, **network, **follow)[f"a:{audio_track}"]
    copyts = []
    if trim:
        stream = stream.filter("atrim", **trim)
        copyts = ["-copyts"]
    out = ffmpeg.output(stream, "pipe:", format="f32le", acodec="pcm_f32le", ac=1, ar=SAMPLE_RATE)
    stdin = () if frags is not None else ("-nostdin",)  # the fragments come on standard input
    return [
        ffmpeg_exe(),
        *out.global_args(*stdin, "-hide_banner", "-loglevel", "error", *copyts).compile()[1:],
    ]


def read_blocks(
    path: Path | str,
    audio_track: int = 0,
    block_seconds: float = BLOCK_SECONDS,
    start_seconds: float | None = None,
    duration_seconds: float | None = None,
) -> Iterator[np.ndarray]:
    """The audio as float32 blocks of `block_seconds` (the last one shorter), decoded as it is read."""
    info = probe(path)
    if info.audio_streams == 0:
        raise AudioError(f"{path}: has no audio stream")
    if audio_track >= info.audio_streams:
        raise AudioError(f"{path}: has {info.audio_streams} audio stream(s); --audio-track counts from 0")
    block_bytes = int(block_seconds * SAMPLE_RATE) * 4
    argv = decode_command(path, audio_track, start_seconds, duration_seconds)
    frags = fragments(path)
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if frags is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    failed: list[AudioError] = []
    if frags is not None:
        import threading

        def feed() -> None:
            # (from a second earlier: a part's real start may differ from its listed length's sum by a
            # frame or two; ffmpeg's atrim cuts at the exact time)
            first = frags.first_part(max(0.0, (start_seconds or 0.0) - 1.0))
            urls = ([frags.init] if frags.init else []) + [u for u, _ in frags.parts[first:]]
            try:
                for url in urls:
                    data = _fetch(url, frags.playlist)
                    if proc.poll() is not None:
                        break
                    proc.stdin.write(data)
            except AudioError as exc:
                if proc.poll() is None:  # (not a fragment past a window ffmpeg has finished)
                    failed.append(exc)
            except OSError:  # ffmpeg stopped reading (the job ended or was stopped)
                pass
            finally:
                with contextlib.suppress(OSError):
                    proc.stdin.close()

        threading.Thread(target=feed, daemon=True).start()
    try:
        assert proc.stdout is not None
        pending = b""
        while True:
            data = proc.stdout.read(block_bytes)
            if not data:
                break
            data = pending + data
            usable = len(data) - len(data) % 4
            pending = data[usable:]
            if usable:
                yield np.frombuffer(data[:usable], dtype="<f4").astype(np.float32)
        err = proc.stderr.read().decode("utf-8", "replace").strip() if proc.stderr else ""
        if failed:  # what ffmpeg decoded before the missing fragment is not the whole input
            proc.wait()
            raise failed[0]
        if proc.wait() != 0:
            raise AudioError(
                f"{path}: ffmpeg could not decode it ({err.splitlines()[-1] if err else 'error'})"
            )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
