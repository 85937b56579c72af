-- qwen3asr for mpv: subtitles generated locally with Qwen3-ASR while you watch.
--
-- Press Ctrl+Alt+s (or send `script-message-to qwen3asr generate`) to transcribe the playing file. The engine
-- (`qwen3asr transcribe --progressive --json-progress`) starts at the current position, so subtitles appear
-- where you are first; the subtitle track is added as soon as the first segment exists and reloaded as more
-- arrive. Options live in script-opts/qwen3asr.conf.

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
}
options.read_options(o, "qwen3asr")

local state = {}

local function reset()
    state = {job = nil, output = nil, sid = nil, temp_dir = nil, done = false}
end
reset()

local function osd(text, seconds)
    mp.osd_message("qwen3asr: " .. text, seconds or 3)
end

local function temp_root()
    return os.getenv("TMPDIR") or os.getenv("TEMP") or os.getenv("TMP") or "/tmp"
end

local function find_track(path)
    for _, track in ipairs(mp.get_property_native("track-list") or {}) do
        if track.type == "sub" and track["external-filename"] == path then
            return track.id
        end
    end
    return nil
end

local function show(path)
    if state.sid and find_track(path) then
        mp.commandv("sub-reload", tostring(state.sid))
    else
        local lang = o.language ~= "" and o.language or nil
        if lang then
            mp.commandv("sub-add", path, "select", "Qwen3-ASR", lang)
        else
            mp.commandv("sub-add", path, "select", "Qwen3-ASR")
        end
    end
    state.sid = find_track(path)
end

local function on_event(event)
    if event.event == "update" then
        state.output = event.output
        show(event.output)
        mp.commandv("script-message", "qwen3asr-update", tostring(event.segments))
    elseif event.event == "progress" and event.percent then
        osd(string.format("%d%%", math.floor(event.percent)), 2)
    elseif event.event == "error" then
        osd("error: " .. tostring(event.message), 6)
    elseif event.event == "output" then
        state.done = true
        if event.outputs and event.outputs[1] then
            show(event.outputs[1])
        end
        osd("done", 2)
        mp.commandv("script-message", "qwen3asr-done", event.outputs and event.outputs[1] or "")
    end
end

mp.enable_messages("info")
mp.register_event("log-message", function(e)
    if e.prefix ~= mp.get_script_name() or not state.job then
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

local function cleanup()
    if state.job then
        mp.abort_async_command(state.job)
    end
    if state.temp_dir then
        if state.sid then
            mp.commandv("sub-remove", tostring(state.sid))
        end
        if state.output then
            os.remove(state.output)
        end
        os.remove(state.temp_dir)
    end
    reset()
end

local function generate()
    if state.job then
        osd("already running", 2)
        return
    end
    local path = mp.get_property("path")
    if not path then
        return
    end
    if mp.get_property("demuxer-via-network") == "yes" or path:find("://") or path == "-" then
        osd("network streams and pipes are not supported yet; play a local file", 6)
        mp.commandv("script-message", "qwen3asr-refused", "network streams are not supported yet")
        return
    end
    path = utils.join_path(mp.get_property("working-directory") or "", path)
    local out_dir = o.out_dir
    if out_dir == "" then
        state.temp_dir = utils.join_path(temp_root(), string.format("qwen3asr-mpv-%d-%d",
            utils.getpid(), math.floor(mp.get_time() * 1000)))
        out_dir = state.temp_dir
    end
    local args = {o.command, "transcribe", path, "--json-progress", "--progressive", "--overwrite",
                  "--format", o.format, "--output-dir", out_dir}
    local audio_id = mp.get_property_number("current-tracks/audio/id")
    if audio_id and audio_id > 1 then
        table.insert(args, "--audio-track")
        table.insert(args, tostring(audio_id - 1))
    end
    local position = mp.get_property_number("time-pos") or 0
    if o.from_position and position > 1 then
        table.insert(args, "--start")
        table.insert(args, string.format("%.3f", position))
    end
    for _, pair in ipairs({{"--model", o.model}, {"--aligner", o.aligner}, {"--language", o.language}}) do
        if pair[2] ~= "" then
            table.insert(args, pair[1])
            table.insert(args, pair[2])
        end
    end
    for word in o.extra_args:gmatch("%S+") do
        table.insert(args, word)
    end
    osd("transcribing…", 2)
    state.job = mp.command_native_async({
        name = "subprocess", args = args, playback_only = true,
        capture_stdout = false, capture_stderr = true,
    }, function(success, result, err)
        state.job = nil
        if result and result.status ~= 0 and result.error_string ~= "killed" then
            local message = (result.stderr or ""):gsub("%s+$", ""):match("([^\n]*)$") or err or "failed"
            osd("failed: " .. message, 8)
            mp.commandv("script-message", "qwen3asr-failed", message)
        end
    end)
end

mp.add_key_binding(o.key, "generate", generate)
mp.register_script_message("generate", generate)
mp.register_event("end-file", cleanup)
mp.register_event("shutdown", cleanup)
mp.register_event("file-loaded", function()
    if o.autostart then
        generate()
    end
end)
