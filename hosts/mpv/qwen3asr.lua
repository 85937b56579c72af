-- qwen3asr for mpv: subtitles generated locally with Qwen3-ASR while you watch.
--
-- Press Ctrl+Alt+s (or send `script-message-to qwen3asr generate`) to transcribe the playing file. The engine
-- (`qwen3asr transcribe --progressive --json-progress`) starts at the current position, so subtitles appear
-- where you are first; the subtitle track is added as soon as the first segment exists and replaced as more
-- arrive, keeping the viewer's choice of track. Options live in script-opts/qwen3asr.conf.
--
-- Script messages for other scripts and tests: qwen3asr-update (segments so far), qwen3asr-done (the file),
-- qwen3asr-failed (the engine's reason), qwen3asr-refused (why nothing started).

local mp = require("mp")
local utils = require("mp.utils")
local options = require("mp.options")

local o = {
    command = "qwen3asr",   -- the engine CLI (the installer writes its full path)
    model = "",             -- preset name or model folder ("" = the default, qwen3-asr-0.6b)
    aligner = "",           -- aligner preset or folder ("" = the model's own)
    language = "",          -- force a language (e.g. en, zh); "" = detect
    format = "srt",         -- srt, vtt or ass
    key = "ctrl+alt+s",
    autostart = false,      -- start on every file load
    from_position = true,   -- begin at the playback position, then do the beginning
    out_dir = "",           -- where the subtitle goes ("" = a temporary folder, removed afterwards)
    extra_args = "",        -- more arguments for `qwen3asr transcribe`, space separated
    verbose = false,        -- show the engine's JSON events on the terminal
    seek_lead = 1.0,        -- after a seek outside what is done, start this many seconds ahead of it
    live_wait = 60,         -- a live stream or pipe: the engine stops when nothing new came for this long
    save_next_to_video = false,  -- when done, also save <name>.<lang>.<format> beside a local video
}
options.read_options(o, "qwen3asr")

local WINDOWS = package.config:sub(1, 1) == "\\"
local TITLE = "Qwen3-ASR"

local state = {}
local saved = {}  -- files this script saved next to videos (this session): only these may be replaced

local function reset()
    -- job: the running subprocess; output: the subtitle file; sid: its track; error: the engine's last error;
    -- audio: the audio track id transcribed
    -- ranges: the {start, end} ranges transcribed (the engine's resume state); start: where the job began
    -- dump, recording: mpv's dump of a live stream or pipe (its async command) and the file it grows
    -- playlist: the list of a site's fragments written for the engine
    state = {job = nil, output = nil, sid = nil, temp_dir = nil, done = false, error = nil, audio = nil,
             ranges = {}, start = 0, dump = nil, recording = nil, live = false, waiting = nil, playlist = nil}
end
reset()

-- The engine's events arrive as the script's own log lines at level info; keep them off the terminal.
if not o.verbose then
    mp.commandv("change-list", "msg-level", "append", mp.get_script_name() .. "=warn")
end

local function osd(text, seconds)
    mp.osd_message("qwen3asr: " .. text, seconds or 3)
end

local function temp_root()
    return os.getenv("TMPDIR") or os.getenv("TEMP") or os.getenv("TMP") or "/tmp"
end

local function tracks(kind)
    local out = {}
    for _, track in ipairs(mp.get_property_native("track-list") or {}) do
        if track.type == kind then
            table.insert(out, track)
        end
    end
    return out
end

local function newest_track(path)
    local id = nil
    for _, track in ipairs(tracks("sub")) do
        if track["external-filename"] == path and (id == nil or track.id > id) then
            id = track.id
        end
    end
    return id
end

-- Show the file's current content. mpv's sub-reload re-selects the reloaded track and drops its title
-- (command.c, cmd_track_reload), so the file is added again as a new track and the old one removed: ours is
-- selected only the first time or when the viewer had it selected, and kept as the secondary track if it
-- was that; any other choice of the viewer (another track, or none) stays.
local function show(path)
    local old = state.sid
    if old and newest_track(path) == nil then
        old = nil
    end
    local sid = mp.get_property("sid")
    local secondary = mp.get_property("secondary-sid")
    local flag = (old == nil or sid == tostring(old)) and "select" or "auto"
    local args = {"sub-add", path, flag, TITLE}
    if o.language ~= "" then
        table.insert(args, o.language)
    end
    mp.command_native(args)
    local new = newest_track(path)
    if old and new and new ~= old then
        mp.commandv("sub-remove", tostring(old))
        if secondary == tostring(old) then
            mp.set_property("secondary-sid", tostring(new))
        end
        if flag == "auto" and mp.get_property("sid") ~= sid then
            mp.set_property("sid", sid)  -- "auto" may still pick a track when none was selected
        end
    end
    state.sid = new
end

-- A copy of the finished subtitle beside the video as <name>.<lang>.<format> (the name players load with the
-- video, its language tagged), never over a file this script did not save itself.
local function save_next_to(video, output, code)
    local folder, name = utils.split_path(video)
    local stem = name:match("^(.+)%.[^%.]*$") or name
    local extension = output:match("%.([^%.]+)$") or o.format
    local target = utils.join_path(folder, stem .. (code and code ~= "" and ("." .. code) or "") .. "." .. extension)
    if utils.file_info(target) and not saved[target] then
        osd("kept the existing " .. target, 6)
        mp.commandv("script-message", "qwen3asr-not-saved", target)
        return
    end
    local source = io.open(output, "rb")
    local text = source and source:read("*a")
    if source then
        source:close()
    end
    local partial = target .. ".partial"
    local sink = text and io.open(partial, "wb")
    if not sink then
        osd("could not save " .. target, 6)
        mp.commandv("script-message", "qwen3asr-not-saved", target)
        return
    end
    sink:write(text)
    sink:close()
    if saved[target] then
        os.remove(target)  -- our own earlier copy (os.rename does not replace a file on Windows)
    end
    local moved = os.rename(partial, target)
    if not moved then
        os.remove(partial)
        mp.commandv("script-message", "qwen3asr-not-saved", target)
        return
    end
    saved[target] = true
    osd("saved " .. target, 4)
    mp.commandv("script-message", "qwen3asr-saved", target)
end

local function on_event(event)
    if event.event == "update" then
        state.output = event.output
        show(event.output)
        mp.commandv("script-message", "qwen3asr-update", tostring(event.segments))
    elseif event.event == "progress" and event.percent then
        osd(string.format("%d%%", math.floor(event.percent)), 2)
    elseif event.event == "status" and event.message then
        osd(tostring(event.message), 30)  -- a download or conversion can take minutes: say what it is doing
        mp.commandv("script-message", "qwen3asr-status", tostring(event.message))
    elseif event.event == "file" then
        state.transcribing = true  -- the model is loaded: from now on a seek may restart it
        osd("transcribing…", 2)
    elseif event.event == "ranges" and event.done then
        state.ranges = event.done
    elseif event.event == "error" then
        state.error = tostring(event.message or "")
        osd("error: " .. state.error, 8)
    elseif event.event == "output" then
        state.done = true
        if event.outputs and event.outputs[1] then
            state.output = event.outputs[1]
            show(event.outputs[1])
        end
        osd("done", 2)
        mp.commandv("script-message", "qwen3asr-done", event.outputs and event.outputs[1] or "")
        if o.save_next_to_video and state.video and state.output then
            save_next_to(state.video, state.output, event.language_code)
        end
    end
end

mp.enable_messages("info")
mp.register_event("log-message", function(e)
    -- (not `state.job`: the job's callback may run before its last lines, the final "output", arrive)
    if e.prefix ~= mp.get_script_name() or not state.listening then
        return
    end
    local line = e.text:gsub("%s+$", "")
    if line:sub(1, 1) ~= "{" then
        return
    end
    local event = utils.parse_json(line)
    if event then
        on_event(event)
    end
end)

local function remove_folder(folder)
    if not os.remove(folder) and WINDOWS then  -- the C runtime's remove() does not remove folders there
        mp.command_native({name = "subprocess", args = {"cmd", "/d", "/c", "rmdir", folder},
                           playback_only = false, capture_stdout = true, capture_stderr = true})
    end
end

local function make_folder(folder)  -- the engine makes its output folder; mpv's recorder needs one there first
    local args = WINDOWS and {"cmd", "/d", "/c", "mkdir", folder} or {"mkdir", "-p", folder}
    mp.command_native({name = "subprocess", args = args, playback_only = false,
                       capture_stdout = true, capture_stderr = true})
end

local function stop_job()
    state.listening = false  -- what a stopped job still prints is not news
    if state.waiting then
        state.waiting:kill()
        state.waiting = nil
    end
    if state.job then
        mp.abort_async_command(state.job)
        state.job = nil
    end
    if state.dump then
        mp.abort_async_command(state.dump)
        state.dump = nil
    end
end

local function cleanup()
    stop_job()
    if state.sid and state.temp_dir then
        mp.commandv("sub-remove", tostring(state.sid))
    end
    if state.temp_dir then
        local ours = state.temp_dir .. (WINDOWS and "\\" or "/")
        if state.output and state.output:sub(1, #ours) == ours then  -- never a file in the user's out_dir
            os.remove(state.output)
        end
        if state.resume_file and state.resume_file:sub(1, #ours) == ours then
            os.remove(state.resume_file)  -- left by a job stopped before the end
        end
        if state.recording then
            os.remove(state.recording)
        end
        if state.playlist then  -- the list of a site's fragments the engine read
            os.remove(state.playlist)
        end
        remove_folder(state.temp_dir)
    end
    reset()
end

-- The audio the viewer hears: an external audio file itself, else the playing stream's position among the
-- file's own audio streams (the engine's --audio-track counts like ffmpeg's 0:a:N; mpv's track ids also
-- count external tracks, so id - 1 is wrong as soon as one is loaded).
local function playing_audio(path)
    local current = mp.get_property_native("current-tracks/audio")
    if not current then
        return path, 0, nil
    end
    if current.external then
        return current["external-filename"], 0, current.id
    end
    local n = 0
    for _, track in ipairs(tracks("audio")) do
        if not track.external and track.id ~= current.id then
            local a, b = track["ff-index"], current["ff-index"]
            if (a and b and a < b) or ((not a or not b) and track.id < current.id) then
                n = n + 1
            end
        end
    end
    return path, n, current.id
end

-- mpv's EDL (DOCS/edl-mpv.rst; demux/demux_edl.c, parse_edl): entries split by ";" or newlines, parameters by
-- ",", `name=value` or positional, any value either plain or `%N%` followed by exactly N bytes. Returns the
-- streams ("!new_stream" starts one): each {url = its first segment's file, types = {audio = true, ...}} from
-- its "!delay_open,media_type=..." headers (ytdl_hook writes one per track a format holds).
local function edl_entries(text)
    local entries = {}
    local i, n = 1, #text
    while i <= n do
        local params, positional = {}, {}
        repeat
            local name = text:match("^([%w_]+)=", i)
            if name then
                i = i + #name + 1
            end
            local value
            local length = text:match("^%%(%d+)%%", i)
            if length then
                local from = i + #length + 2
                value, i = text:sub(from, from + tonumber(length) - 1), from + tonumber(length)
            else
                local stop = text:find("[,;\n]", i) or (n + 1)
                value, i = text:sub(i, stop - 1), stop
            end
            if name then
                params[name] = value
            else
                table.insert(positional, value)
            end
            local sep = text:sub(i, i)
            i = i + 1
        until sep ~= ","
        table.insert(entries, {head = positional[1] or "", params = params})
    end
    return entries
end

local function edl_streams(text)
    local streams = {{types = {}}}
    for _, entry in ipairs(edl_entries(text)) do
        local head, params = entry.head, entry.params
        local current = streams[#streams]
        if head == "!new_stream" then
            if current.url or next(current.types) then
                table.insert(streams, {types = {}})
            end
        elseif head == "!delay_open" then
            current.types[params.media_type or ""] = true
        elseif head ~= "" and head:sub(1, 1) ~= "!" and not current.url then
            current.url = params.file or head
        elseif params.file and not current.url then
            current.url = params.file
        end
    end
    local out = {}
    for _, stream in ipairs(streams) do
        if stream.url then
            table.insert(out, stream)
        end
    end
    return out
end

-- A format the ytdl hook gave as DASH fragments (ytdl_hook.lua, edl_track_joined: "!mp4_dash,init=URL" then
-- each fragment's URL with its length): {init = URL or nil, parts = {{url, seconds}, ...}}, or nil for any
-- other EDL (several streams; the joined parts of a multi-part video, each a whole file or manifest).
local function edl_fragments(text)
    local frags = {parts = {}}
    local dash = false
    for _, entry in ipairs(edl_entries(text)) do
        if entry.head == "!new_stream" then
            return nil
        elseif entry.head == "!mp4_dash" then
            dash = true
            frags.init = entry.params.init
        elseif entry.head:sub(1, 1) ~= "!" and (entry.params.file or entry.head) ~= "" then
            table.insert(frags.parts, {entry.params.file or entry.head, tonumber(entry.params.length)})
        end
    end
    return dash and #frags.parts > 0 and frags or nil
end

-- What is playing, as a file name: characters no file name may hold made spaces, at most 80 bytes cut at a
-- character's boundary (a UTF-8 sequence split in two is no valid name on Windows or macOS), no spaces or
-- dots at either end; `fallback` when nothing is left.
local function title_name(fallback)
    local title = (mp.get_property("media-title") or ""):gsub('[%c\\/:*?"<>|]+', " ")
    if #title > 80 then
        local cut = 81  -- back from the first byte left out to the start of its character
        while cut > 1 and title:byte(cut) >= 0x80 and title:byte(cut) < 0xC0 do
            cut = cut - 1
        end
        title = title:sub(1, cut - 1)
    end
    title = title:gsub("^[%s%.]+", ""):gsub("[%s%.]+$", "")
    return (title ~= "" and title ~= "-") and title or fallback
end

-- The playlist the engine reads fragments from (engine/media.py, Fragments): an HLS playlist of their URLs,
-- written into our temporary folder, named after what is playing.
local function write_fragment_playlist(frags, folder)
    local path = utils.join_path(folder, title_name("stream") .. ".m3u8")
    local lines = {"#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:VOD"}
    if frags.init then
        table.insert(lines, '#EXT-X-MAP:URI="' .. frags.init .. '"')
    end
    for _, part in ipairs(frags.parts) do
        table.insert(lines, string.format("#EXTINF:%.3f,", part[2] or 0))
        table.insert(lines, part[1])
    end
    table.insert(lines, "#EXT-X-ENDLIST")
    make_folder(folder)
    local f = io.open(path, "wb")
    if not f then
        return nil
    end
    f:write(table.concat(lines, "\n") .. "\n")
    f:close()
    return path
end

-- What a site played through mpv's ytdl hook (yt-dlp) resolved to: the URL of the audio the viewer hears, or
-- nil and why; for a format sent in fragments, the first fragment's URL and the fragments. The hook leaves the resolved media in stream-open-filename:
-- one URL for a muxed format, or an EDL of separate formats (each one track, opened when selected).
local function resolved_audio(opened)
    if not opened:find("^edl://") then
        if opened:find("^https?://") then
            return opened
        end
        return nil, "this site's stream is not a URL the engine can read"
    end
    local whole = edl_fragments(opened:sub(7))  -- one format, in fragments
    if whole then
        return whole.parts[1][1], nil, whole
    end
    local streams = edl_streams(opened:sub(7))
    local current = mp.get_property_native("current-tracks/audio")
    if not current then
        return nil, "no audio track is playing"
    end
    local typed = false
    for _, stream in ipairs(streams) do
        typed = typed or next(stream.types) ~= nil
    end
    local chosen
    if typed then
        -- ytdl_hook's all_formats: every format a stream of its own whose headers say what tracks it holds,
        -- in the order mpv lists the tracks, so the k-th audio track is the k-th stream holding audio.
        local k = 0
        for _, track in ipairs(tracks("audio")) do
            if not track.external then
                k = k + 1
                if track.id == current.id then
                    break
                end
            end
        end
        for _, stream in ipairs(streams) do
            if stream.types.audio then
                k = k - 1
                if k == 0 then
                    chosen = stream
                    break
                end
            end
        end
    else
        -- The requested formats (bestvideo+bestaudio), opened whole and untyped: when each holds one track,
        -- the tracks' ff-index (their place in mpv's joined timeline) is the stream's place in the EDL.
        local own = {}
        for _, track in ipairs(mp.get_property_native("track-list") or {}) do
            if not track.external and (track.type == "audio" or track.type == "video") then
                table.insert(own, track)
            end
        end
        if #own == #streams then
            for i, track in ipairs(own) do
                track.order = i  -- mpv lists them in timeline order too; ff-index first where it has one
            end
            table.sort(own, function(a, b)
                local x, y = a["ff-index"] or a.order, b["ff-index"] or b.order
                return x < y or (x == y and a.order < b.order)
            end)
            for i, track in ipairs(own) do
                if track.type == "audio" and track.id == current.id then
                    chosen = streams[i]
                end
            end
        end
    end
    if chosen then
        local frags = chosen.url:find("^edl://") and edl_fragments(chosen.url:sub(7))
        if frags then
            return frags.parts[1][1], nil, frags
        end
        if chosen.url:find("^edl://") or not chosen.url:find("^%a[%w+.-]*://") then
            return nil, "this site's audio is not a URL the engine can read"
        end
        return chosen.url
    end
    return nil, "no audio stream found in what yt-dlp resolved"
end

-- The name the engine gives outputs for a URL (media.source_stem): the last part of its path as sent, then
-- unquoted (an escaped "/" is part of the name), characters no file name may hold made "_", without its
-- extension; "stream" when nothing but dots is left.
local function url_stem(url)
    local path = url:gsub("^%a[%w+.-]*://[^/?#]*", ""):gsub("[?#].*$", "")
    local last = (path:match("([^/]*)$") or ""):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    last = last:gsub('[%c\\/:*?"<>|]', "_")
    local stem = last:match("^(.+)%.[^%.]*$") or last
    return stem:find("[^%.]") and stem or "stream"
end

-- The cookies the ytdl hook handed mpv for `url` (cookies-file=memory://, Netscape format: domain, subdomains,
-- path, secure, expiry, name, value, tab-separated; ytdl_hook.lua sets it from yt-dlp's cookies), as a Cookie
-- header's value for the engine's ffmpeg, which cannot read mpv's memory:// file.
local function site_cookies(url)
    local file = mp.get_property("cookies-file") or ""
    if not mp.get_property_native("cookies") or not file:find("^memory://") then
        return nil
    end
    local host = (url:match("^%a[%w+.-]*://([^/:?#]+)") or ""):lower()
    local pairs_ = {}
    for line in file:sub(10):gmatch("[^\r\n]+") do
        line = line:gsub("^#HttpOnly_", "")  -- curl's mark for HttpOnly cookies; other "#" lines are comments
        local domain, _, _, _, _, name, value = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
        if domain and not domain:find("^#") then
            domain = domain:lower():gsub("^%.", "")
            if host == domain or host:sub(-(#domain + 1)) == "." .. domain then
                table.insert(pairs_, name .. "=" .. value)
            end
        end
    end
    return #pairs_ > 0 and table.concat(pairs_, "; ") or nil
end

local function refuse(why)
    osd(why, 6)
    mp.commandv("script-message", "qwen3asr-refused", why)
end

local function generate(at)
    if state.job or state.waiting then
        osd("already running", 2)
        return
    end
    local path = mp.get_property("path")
    if not path then
        return
    end
    if state.done and state.output and newest_track(state.output) then
        mp.set_property("sid", tostring(newest_track(state.output)))
        osd("subtitles already generated", 2)
        mp.commandv("script-message", "qwen3asr-done", state.output)
        return
    end
    local network, resolved, live, frags = {}, false, false, nil
    if path == "-" or path:find("^fd://") then
        live = true  -- a pipe: transcribed from mpv's own dump of what it reads
    elseif path:find("^file://") then
        path = path:gsub("^file://", ""):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
        if WINDOWS and path:find("^/%a:") then
            path = path:sub(2)  -- file:///C:/film.mkv is C:/film.mkv
        end
    elseif path:find("^%a[%w+.-]*://") then
        local opened = mp.get_property("stream-open-filename") or path
        if opened ~= path then  -- a site resolved by the ytdl hook (path is its page, "ytdl://..." or http)
            local url, why, parts = resolved_audio(opened)
            if not url then
                refuse(why)
                return
            end
            path, resolved, frags = url, true, parts
        end
        -- A stream without a length, or that cannot seek (served as it is made, no byte ranges: mpv's
        -- duration is then only an estimate of what arrived), is live: transcribed from mpv's dump of it.
        live = mp.get_property_native("duration") == nil or mp.get_property_native("seekable") == false
        -- The engine's ffmpeg opens the URL itself, with the headers mpv sends (user-agent, http-header-fields,
        -- which the ytdl hook sets from what the site wants).
        local agent = mp.get_property("user-agent") or ""
        if agent ~= "" and not live then
            network = {"--user-agent", agent}
        end
        for _, field in ipairs(live and {} or mp.get_property_native("http-header-fields") or {}) do
            table.insert(network, "--http-header")
            table.insert(network, field)
        end
        local cookie = not live and site_cookies(path)
        if cookie then
            table.insert(network, "--http-header")
            table.insert(network, "Cookie: " .. cookie)
        end
    end
    if frags and not live then
        -- the engine fetches the fragments itself, with the headers above (ffmpeg would not send them)
        if not state.temp_dir then
            state.temp_dir = utils.join_path(temp_root(), string.format("qwen3asr-mpv-%d-%d",
                utils.getpid(), math.floor(mp.get_time() * 1000)))
        end
        path = write_fragment_playlist(frags, state.temp_dir)
        state.playlist = path
        if not path then
            refuse("cannot write the list of this site's fragments into " .. state.temp_dir)
            return
        end
    elseif not live and not path:find("^%a[%w+.-]*://") then
        path = utils.join_path(mp.get_property("working-directory") or "", path)
    end
    local source, track, audio_id = playing_audio(path)
    -- a local file, to save beside (not our list of a site's fragments)
    state.video = (not live and not frags and not path:find("^%a[%w+.-]*://")) and path or nil
    if resolved or live then
        track = 0  -- the playing format's own URL, or mpv's recording (it holds the selected streams only)
    end
    local out_dir = o.out_dir
    if (out_dir == "" or live) and not state.temp_dir then
        state.temp_dir = utils.join_path(temp_root(), string.format("qwen3asr-mpv-%d-%d",
            utils.getpid(), math.floor(mp.get_time() * 1000)))
    end
    if out_dir == "" then
        out_dir = state.temp_dir
    end
    local offset = 0
    if live then
        -- mpv's dump-cache, continuous (DOCS/man/input.rst): what the cache holds from `offset`, then all
        -- that arrives. The recorder starts the file's timestamps at 0 (common/recorder.c, check_restart), so
        -- the engine adds `offset` back (--time-offset): from the start of the cache when it holds the present
        -- (a network stream's), else from here (a pipe is not cached: what is played is gone).
        offset = mp.get_property_number("time-pos") or 0
        local cache = mp.get_property_native("demuxer-cache-state") or {}
        for _, range in ipairs(cache["seekable-ranges"] or {}) do
            if range.start <= offset and offset <= range["end"] then
                offset = range.start
            end
        end
        if not state.recording then
            -- named after what is playing, so that outputs in out_dir differ from one stream to the next
            state.recording = utils.join_path(state.temp_dir, title_name("stream") .. ".mkv")
        end
        os.remove(state.recording)
        make_folder(state.temp_dir)
        source = state.recording
    end
    local _, name = utils.split_path(source)
    local stem = source:find("^%a[%w+.-]*://") and url_stem(source) or (name:match("^(.+)%.[^%.]*$") or name)
    state.resume_file = utils.join_path(out_dir, stem .. ".resume.json")
    -- --resume: a restart after a seek keeps what is done (the engine's STEM.resume.json in out_dir)
    local args = {o.command, "transcribe", source, "--json-progress", "--progressive", "--resume",
                  "--format", o.format, "--output-dir", out_dir}
    if live then  -- the recording grows as mpv receives the stream: follow it, with its times moved
        args[6] = "--follow"
        table.insert(args, 7, tostring(o.live_wait))
        table.insert(args, "--time-offset")
        table.insert(args, string.format("%.3f", offset))
    end
    if out_dir == state.temp_dir then
        table.insert(args, "--overwrite")  -- only ever our own folder; in out_dir, never replace a file
    end
    if track > 0 then
        table.insert(args, "--audio-track")
        table.insert(args, tostring(track))
    end
    local position = at or (o.from_position and mp.get_property_number("time-pos")) or 0
    state.start = position > 1 and position or 0
    if position > 1 and not live then
        table.insert(args, "--start")
        table.insert(args, string.format("%.3f", position))
    end
    for _, pair in ipairs({{"--model", o.model}, {"--aligner", o.aligner}, {"--language", o.language}}) do
        if pair[2] ~= "" then
            table.insert(args, pair[1])
            table.insert(args, pair[2])
        end
    end
    for _, arg in ipairs(network) do
        table.insert(args, arg)
    end
    for word in o.extra_args:gmatch("%S+") do
        table.insert(args, word)
    end
    local function run_engine()
        osd("transcribing…", 2)
        state.error, state.done, state.audio, state.transcribing = nil, false, audio_id, false
        state.listening = true
        local job
        job = mp.command_native_async({
            name = "subprocess", args = args, playback_only = true,
            capture_stdout = false, capture_stderr = true,
        }, function(success, result, err)
            if state.job ~= job then
                return  -- an earlier job, stopped; this callback may run after the next one started
            end
            state.job = nil
            if state.dump then  -- the engine is done with the recording: mpv stops writing it
                mp.abort_async_command(state.dump)
                state.dump = nil
            end
            if result and result.status ~= 0 and not result.killed_by_us then
                local message = state.error
                if not message or message == "" then
                    message = (result.stderr or ""):gsub("%s+$", ""):match("([^\n]*)$")
                end
                if not message or message == "" then
                    message = err or result.error_string or "failed"
                end
                osd("failed: " .. message, 8)
                mp.commandv("script-message", "qwen3asr-failed", message)
            end
        end)
        state.job = job
    end
    if not live then
        run_engine()
        return
    end
    state.live = true
    local dump
    dump = mp.command_native_async({name = "dump-cache", start = string.format("%.3f", offset),
                                    ["end"] = "no", filename = state.recording}, function(success, _, err)
        if state.dump ~= dump then
            return  -- an earlier recording, stopped
        end
        state.dump = nil  -- playback ended, or stopped: the engine reads on until nothing more comes
        if not success then
            if state.waiting then
                state.waiting:kill()
                state.waiting = nil
            end
            refuse("mpv could not record this stream: " .. (err or "unknown error"))
        end
    end)
    state.dump = dump
    local tries = 0
    state.waiting = mp.add_periodic_timer(0.2, function()  -- the engine starts once the recording does
        tries = tries + 1
        local info = utils.file_info(state.recording)
        if (info and info.size > 0) or tries > 600 then  -- (2 minutes: mpv writes in 256 KiB steps)
            state.waiting:kill()
            state.waiting = nil
            if info and info.size > 0 then
                run_engine()
            else
                refuse("mpv recorded nothing of this stream (is its cache off?)")
            end
        end
    end)
end

-- After a seek to where nothing is done and the job is not about to be, start again just ahead of it; the
-- engine keeps what is done (--resume) and fills the rest afterwards.
local AHEAD = 30  -- seconds past the job's front that it will reach with its current chunk
local function covered(position)
    for _, range in ipairs(state.ranges) do
        if range[1] <= position and position < range[2] then
            return true
        end
    end
    return false
end

local function front()
    local at = state.start
    for _, range in ipairs(state.ranges) do
        if range[1] <= at + 0.5 and at < range[2] then
            at = range[2]
        end
    end
    return at
end

mp.register_event("playback-restart", function()
    local position = mp.get_property_number("time-pos")
    if state.live then
        return  -- a live recording goes on as it is
    end
    if not state.job or not state.transcribing or not position or covered(position) then
        return  -- (while the model loads or downloads, a restart would only start that again)
    end
    if position >= state.start and position < front() + AHEAD then
        return
    end
    stop_job()
    mp.commandv("script-message", "qwen3asr-restarted", string.format("%.3f", position + o.seek_lead))
    generate(position + o.seek_lead)
end)

-- Switching the audio track while a job runs starts again on the new one.
mp.observe_property("current-tracks/audio/id", "number", function(_, id)
    if state.job and id and state.audio and id ~= state.audio then
        stop_job()
        if state.sid then
            mp.commandv("sub-remove", tostring(state.sid))
        end
        state.sid, state.output, state.done, state.ranges = nil, nil, false, {}
        generate()
    end
end)

mp.add_key_binding(o.key, "generate", function() generate() end)
mp.register_script_message("generate", function() generate() end)
mp.register_event("end-file", cleanup)
mp.register_event("shutdown", cleanup)
mp.register_event("file-loaded", function()
    if o.autostart then
        generate()
    end
end)
