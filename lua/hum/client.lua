-- hum.client — the commands that talk to a running `hum up` over its
-- control socket: ps, logs, status, start, stop, restart, signal, down, eval.
--
-- The socket is found like the server finds it: the config (-f FILE, or
-- hum.lua in the current directory or a parent) names the project
-- directory; the socket is <dir>/.hum/hum.sock or, for a path too long for
-- a Unix socket, a per-user runtime directory (raw.api_socket_path).  The
-- config itself is not loaded.
--
-- Exit status: 0 ok, 1 the operation failed, 2 usage error, 3 no running
-- instance (no config, no socket, or nobody listening).
local cli = require "hum.cli"
local raw = require "hum.raw"
local util = require "hum.util"
local cjson = require "cjson"

local M = {}

local die = cli.die

local function common_opts(extra)
	local o = {
		f = { name = "file", arg = true }, file = { name = "file", arg = true },
		h = { name = "help" }, help = { name = "help" },
	}
	for k, v in pairs(extra or {}) do o[k] = v end
	return o
end

-- Colour -------------------------------------------------------------------------
local function want_color()
	local nc = os.getenv("NO_COLOR")
	if nc and nc ~= "" then return false end
	if os.getenv("TERM") == "dumb" then return false end
	return raw.isatty(1)
end

local PALETTE = { "36", "33", "32", "35", "34", "96", "93", "92", "95", "94" } -- as core/output.c
local STATE_COLOR = {
	running = "32", ready = "32", succeeded = "32",
	starting = "33", stopping = "33", backoff = "33", pending = "33",
	failed = "31", stopped = "2",
}

local function paint(on, code, s)
	if not on or not code then return s end
	return "\027[" .. code .. "m" .. s .. "\027[0m"
end

-- Connection ------------------------------------------------------------------------
-- Returns a connection or nil, exit code (after printing the reason).
local function connect(opts)
	local file = opts.file
	if file then
		if not util.exists(file) then return nil, die(3, "no such file: %s", file) end
	else
		file = require("hum.config").find()
		if not file then
			return nil, die(3, "no hum.lua here or in a parent directory (use -f FILE); no running instance")
		end
	end
	local dir = util.dirname(file)
	local path, err = raw.api_socket_path(dir)
	if not path then return nil, die(3, "cannot find the control socket for %s: %s", dir, err) end
	local conn, cerr, code = raw.client_connect(path)
	if not conn then
		if code == "ENOENT" or code == "ENOTDIR" then
			return nil, die(3, "no running hum for %s (no socket %s)", dir, path)
		elseif code == "ECONNREFUSED" then
			return nil, die(3, "no running hum for %s (stale socket %s)", dir, path)
		end
		return nil, die(1, "cannot connect to %s: %s", path, cerr)
	end
	return conn
end

local next_id = 0
-- Sends one request; returns the decoded first response and its raw line,
-- or nil, message.
local function request(conn, req, timeout)
	next_id = next_id + 1
	req.id = next_id
	local ok, err = conn:send(cjson.encode(req) .. "\n")
	-- a refusing server (another uid, too many clients) writes why and
	-- closes, possibly before the request is sent: read that first
	local line, e
	if ok then line, e = conn:read_line(timeout) else line, e = conn:read_line(1) end
	if not ok and not line then return nil, err end
	if not line then
		return nil, e == "eof" and "hum closed the connection" or e
	end
	local okd, resp = pcall(cjson.decode, line)
	if not okd or type(resp) ~= "table" then return nil, "bad response from hum: " .. line:sub(1, 200) end
	return resp, line
end

local function null(v) if v == cjson.null then return nil end return v end

-- One round trip for the simple commands; returns resp, line or nil, code.
local function call(opts, req, timeout)
	local conn, code = connect(opts)
	if not conn then return nil, code end
	local resp, line = request(conn, req, timeout)
	if not resp then
		conn:close()
		return nil, die(1, "%s", line)
	end
	if not resp.ok then
		conn:close()
		return nil, die(1, "%s", tostring(null(resp.error) or "request failed"))
	end
	return resp, line, conn
end

-- Formatting --------------------------------------------------------------------------
local function table_print(rows, color)
	local w = {}
	for _, r in ipairs(rows) do
		for k, cell in ipairs(r) do
			local len = #(type(cell) == "table" and cell[1] or cell)
			if k < #r and (not w[k] or len > w[k]) then w[k] = len end
		end
	end
	local out = {}
	for _, r in ipairs(rows) do
		local parts = {}
		for k, cell in ipairs(r) do
			local text, code = cell, nil
			if type(cell) == "table" then text, code = cell[1], cell[2] end
			local pad = k < #r and (" "):rep(w[k] - #text) or ""
			parts[#parts + 1] = paint(color, code, text) .. pad
		end
		out[#out + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
	end
	io.stdout:write(table.concat(out, "\n"), "\n")
end

local function exit_text(p)
	if null(p.signal) then return "SIG" .. p.signal end
	if null(p.exit_code) then return tostring(p.exit_code) end
	return "-"
end

local LIVE = { starting = true, running = true, ready = true, stopping = true }

local function uptime(p, now)
	local started = null(p.started_at)
	if LIVE[p.state] and started then return util.fmt_duration(math.max(0, now - started)) end
	return "-"
end

local function json_array_of(line)
	-- the server puts "procs" last: the array is everything after the key
	local k = line:find(',"procs":', 1, true)
	return k and line:sub(k + 9, -2) or "[]"
end

-- ps ------------------------------------------------------------------------------------
local PS_HELP = [[
usage: hum ps [-f FILE] [--json]

Lists the processes of the running hum: NAME, STATE, PID, UPTIME, RESTARTS,
EXIT (code or signal of the last run), GROUP and the reason for the state.

  -f, --file FILE   config whose hum to ask (default: hum.lua here or in a parent)
      --json        one JSON array of objects, stable keys in this order: name,
                    id, kind, state, pid, restarts, exit_code, signal,
                    started_at, ended_at, changed_at, group, groups, ready,
                    reason, lines, bytes, dropped, first_seq, last_seq,
                    generation (times: seconds since the epoch; null if none)

Exit status: 0, 1 on error, 3 when no hum is running for this project.]]

function M.ps(args)
	local opts, pos = cli.parse(args, common_opts { json = { name = "json" } })
	if not opts then return die(2, "%s\n%s", pos, PS_HELP) end
	if opts.help then print(PS_HELP) return 0 end
	if #pos > 0 then return die(2, "ps takes no arguments\n%s", PS_HELP) end
	local resp, line, conn = call(opts, { cmd = "ps" }, 30)
	if not resp then return line end
	conn:close()
	if opts.json then
		io.stdout:write(json_array_of(line), "\n")
		return 0
	end
	local color = want_color()
	local now = resp.time or raw.time()
	local rows = { { "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "EXIT", "GROUP", "INFO" } }
	for _, p in ipairs(resp.procs) do
		rows[#rows + 1] = {
			p.name, { p.state, STATE_COLOR[p.state] }, null(p.pid) and tostring(p.pid) or "-",
			uptime(p, now), tostring(p.restarts), exit_text(p), null(p.group) or "-",
			p.reason ~= "" and p.reason or "",
		}
	end
	if #resp.procs == 0 then
		print("no processes")
		return 0
	end
	table_print(rows, color)
	return 0
end

-- status ------------------------------------------------------------------------------------
local STATUS_HELP = [[
usage: hum status [-f FILE] [--json] NAME...

Shows one process in detail (NAME may also be a group, a glob or the base
name of replicas: web matches web.1, web.2).

  -f, --file FILE   config whose hum to ask
      --json        the process as one JSON object (same keys as hum ps --json);
                    a JSON array when NAME matches several processes

Exit status: 0, 1 when nothing matches, 3 when no hum is running.]]

local function fmt_time(t)
	t = null(t)
	if not t or t == 0 then return "-" end
	return os.date("%Y-%m-%d %H:%M:%S", math.floor(t))
end

local function fmt_bytes(n)
	if n < 1024 then return n .. " B" end
	if n < 1024 * 1024 then return ("%.1f KiB"):format(n / 1024) end
	return ("%.1f MiB"):format(n / 1048576)
end

function M.status(args)
	local opts, pos = cli.parse(args, common_opts { json = { name = "json" } })
	if not opts then return die(2, "%s\n%s", pos, STATUS_HELP) end
	if opts.help then print(STATUS_HELP) return 0 end
	if #pos == 0 then return die(2, "status needs a NAME\n%s", STATUS_HELP) end
	local resp, line, conn = call(opts, { cmd = "status", names = pos }, 30)
	if not resp then return line end
	conn:close()
	if opts.json then
		local arr = json_array_of(line)
		io.stdout:write(#resp.procs == 1 and arr:sub(2, -2) or arr, "\n")
		return 0
	end
	local color = want_color()
	local now = resp.time or raw.time()
	for k, p in ipairs(resp.procs) do
		if k > 1 then print() end
		local groups = {}
		for _, g in ipairs(p.groups or {}) do groups[#groups + 1] = g end
		local rows = {
			{ "name:", p.name },
			{ "kind:", p.kind },
			{ "state:", { p.state, STATE_COLOR[p.state] } },
			{ "reason:", p.reason ~= "" and p.reason or "-" },
			{ "pid:", null(p.pid) and tostring(p.pid) or "-" },
			{ "started:", fmt_time(p.started_at) .. (LIVE[p.state] and ("  (up " .. uptime(p, now) .. ")") or "") },
			{ "ended:", fmt_time(p.ended_at) },
			{ "exit:", exit_text(p) },
			{ "restarts:", tostring(p.restarts) },
			{ "groups:", #groups > 0 and table.concat(groups, ", ") or "-" },
			{ "log:", ("%d lines, %s%s"):format(p.lines, fmt_bytes(p.bytes),
				p.dropped > 0 and (", " .. p.dropped .. " dropped") or "") },
		}
		table_print(rows, color)
	end
	return 0
end

-- logs ---------------------------------------------------------------------------------------
local LOGS_HELP = [[
usage: hum logs [--file FILE] [NAME...] [-f|--follow] [-n N] [--grep RE]
                [--since T] [--stream out|err] [--json]

Prints the processes' recent output from hum's in-memory log rings, merged
in the order it was produced, as "HH:MM:SS name | line" (stderr lines are
marked with "!").  NAME may be a process, a group, a glob or the base name
of replicas; default: every process.

  -f, --follow      (also -F) keep printing new lines until the processes are
                    removed or hum stops
  -n, --lines N     the last N lines (default 100; 0 with --follow: only new)
  -g, --grep RE     only lines matching the POSIX extended regular expression
                    RE (plain text is matched as a substring)
  -s, --since T     only lines since T: a duration ago (30s, 10m, 2h, 1d),
                    a time today (14:05, 14:05:30), a date and time
                    (2024-05-01T14:05:00) or seconds since the epoch
      --stream S    only stdout (out) or stderr (err)
      --json        one JSON object per line: {"seq","time","name","stream",
                    "line"} ("cont":true when a long line continues in the
                    next); seq orders lines across processes, time is seconds
                    since the epoch
      --file FILE   config whose hum to ask (default: hum.lua here or in a
                    parent); there is no short form: in `hum logs`, -f means
                    --follow (as in tail -f), not --file as in other commands

Exit status: 0, 1 on error (nothing matches NAME, bad RE), 3 when no hum
is running.]]

-- "30s", "10m", "14:05", "2024-05-01T14:05:00", "1700000000" -> epoch seconds
local function parse_since(s, now)
	local n, unit = s:match("^(%d+%.?%d*)([smhd]?)$")
	if n and unit ~= "" then
		local mult = ({ s = 1, m = 60, h = 3600, d = 86400 })[unit]
		return now - tonumber(n) * mult
	end
	if n and unit == "" then
		local v = tonumber(n)
		if v > 1e8 then return v end
		return nil
	end
	local h, mi, sec = s:match("^(%d%d?):(%d%d):?(%d?%d?)$")
	if h then
		local t = os.date("*t", math.floor(now))
		t.hour, t.min, t.sec = tonumber(h), tonumber(mi), tonumber(sec) or 0
		return os.time(t)
	end
	local y, mo, d, rest = s:match("^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$")
	if y then
		local t = { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = 0, min = 0, sec = 0 }
		if rest ~= "" then
			local hh, mm, ss = rest:match("^[T ](%d%d):(%d%d):?(%d?%d?)$")
			if not hh then return nil end
			t.hour, t.min, t.sec = tonumber(hh), tonumber(mm), tonumber(ss) or 0
		end
		return os.time(t)
	end
	return nil
end
M.parse_since = parse_since

function M.logs(args)
	local opts, pos = cli.parse(args, {
		file = { name = "file", arg = true },
		f = { name = "follow" }, F = { name = "follow" }, follow = { name = "follow" },
		n = { name = "lines", arg = true }, lines = { name = "lines", arg = true },
		g = { name = "grep", arg = true }, grep = { name = "grep", arg = true },
		s = { name = "since", arg = true }, since = { name = "since", arg = true },
		stream = { name = "stream", arg = true },
		json = { name = "json" },
		h = { name = "help" }, help = { name = "help" },
	})
	if not opts then return die(2, "%s\n%s", pos, LOGS_HELP) end
	if opts.help then print(LOGS_HELP) return 0 end
	local req = { cmd = "logs", follow = opts.follow or nil }
	if #pos > 0 then req.names = pos end
	if opts.lines then
		local n = tonumber(opts.lines)
		if not n or n < 0 or n ~= math.floor(n) then return die(2, "-n needs a whole number >= 0") end
		req.n = n
	end
	if opts.grep then req.grep = opts.grep end
	if opts.stream then
		if opts.stream ~= "out" and opts.stream ~= "err" then return die(2, "--stream must be out or err") end
		req.stream = opts.stream
	end
	if opts.since then
		local t = parse_since(opts.since, raw.time())
		if not t then return die(2, "--since: cannot read %q (try 10m, 14:05 or 2024-05-01T14:05:00)", opts.since) end
		req.since = t
	end
	local conn, code = connect(opts)
	if not conn then return code end
	local color = want_color() and not opts.json
	-- names -> ids (colours as in hum up's output) and the column width
	local ids, width = {}, 0
	if not opts.json then
		local resp, perr = request(conn, { cmd = "ps" }, 30)
		if not resp then return die(1, "%s", perr) end
		if not resp.ok then return die(1, "%s", tostring(null(resp.error) or "ps failed")) end
		for _, p in ipairs(resp.procs) do
			ids[p.name] = p.id
			width = math.max(width, #p.name)
		end
	end
	local ok, err = conn:send(cjson.encode(req) .. "\n")
	if not ok then
		local l = conn:read_line(1)
		local okd, r = pcall(cjson.decode, l or "")
		return die(1, "%s", okd and type(r) == "table" and r.error or err)
	end
	if not opts.follow then io.stdout:setvbuf("full") end
	local out = io.stdout
	local nlines = 0
	while true do
		local line, e = conn:read_line(nil)
		if not line then
			out:flush()
			if opts.follow and e == "eof" then return die(1, "connection to hum lost") end
			return die(1, "%s", e == "eof" and "hum closed the connection" or e)
		end
		local head = line:sub(1, 7)
		if head == '{"seq":' then
			nlines = nlines + 1
			if opts.json then
				out:write(line, "\n")
			else
				local l = cjson.decode(line)
				local name = l.name
				local ts = os.date("%H:%M:%S", math.floor(l.time))
				local sep = l.stream == "err" and (color and " \027[31m!\027[0m " or " ! ")
					or l.stream == "sys" and " * " or " \226\148\130 "
				local pad = (" "):rep(math.max(0, width - #name))
				if color then
					out:write("\027[2m", ts, "\027[0m \027[", PALETTE[(ids[name] or 0) % #PALETTE + 1], "m",
						name, pad, "\027[0m", sep, l.line, "\n")
				else
					out:write(ts, " ", name, pad, sep, l.line, "\n")
				end
			end
			if opts.follow and #line < 4096 then out:flush() end
		elseif head == '{"dropp' then
			local d = cjson.decode(line)
			out:flush()
			io.stderr:write(("hum: %d lines dropped (this terminal or pipe read too slowly)\n"):format(d.dropped or 0))
		else
			out:flush()
			local okd, r = pcall(cjson.decode, line)
			if not okd or type(r) ~= "table" then return die(1, "bad response from hum: %s", line:sub(1, 200)) end
			if not r.ok then return die(1, "%s", tostring(null(r.error) or "logs failed")) end
			if r["end"] then
				if null(r.truncated) then
					io.stderr:write(("hum: %d older lines not sent (response size limit)\n"):format(r.truncated))
				end
				conn:close()
				return 0
			end
		end
	end
end

-- start / stop / restart / signal --------------------------------------------------------------
local function control_help(verb, what)
	return ([[
usage: hum %s [-f FILE] NAME|GROUP|GLOB...

%s  Waits until it is done and prints each process's new state.

  -f, --file FILE   config whose hum to ask (default: hum.lua here or in a parent)

Exit status: 0, 1 when nothing matches or a process failed, 3 when no hum
is running.]]):format(verb, what)
end

local START_HELP = control_help("start", "Starts the processes (and what they depend on) unless they run.")
local STOP_HELP = control_help("stop", "Stops the processes (stop signal, then SIGKILL after the grace period);\nthey stay stopped until started again.  hum itself keeps running.")
local RESTART_HELP = control_help("restart", "Stops the processes and starts them again.")
local SIGNAL_HELP = [[
usage: hum signal [-f FILE] SIG NAME|GROUP|GLOB...

Sends signal SIG (HUP, USR1, TERM, 9, SIGINT...) to each process's group.

  -f, --file FILE   config whose hum to ask

Exit status: 0, 1 when a process is not running or nothing matches, 3 when
no hum is running.]]

local function print_procs(resp)
	local color = want_color()
	local rows = {}
	local failed = false
	for _, p in ipairs(resp.procs or {}) do
		local info = null(p.reason) or ""
		if null(p.pid) then info = "pid " .. p.pid .. (info ~= "" and ", " .. info or "") end
		rows[#rows + 1] = { p.name, { p.state, STATE_COLOR[p.state] }, info }
		if p.state == "failed" then failed = true end
	end
	if #rows > 0 then table_print(rows, color) end
	return failed
end

local function control(verb, help)
	return function(args)
		local opts, pos = cli.parse(args, common_opts())
		if not opts then return die(2, "%s\n%s", pos, help) end
		if opts.help then print(help) return 0 end
		if #pos == 0 then return die(2, "%s needs at least one NAME, GROUP or GLOB\n%s", verb, help) end
		local resp, line, conn = call(opts, { cmd = verb, targets = pos }, nil)
		if not resp then return line end
		conn:close()
		local failed = print_procs(resp)
		if resp.timeout then return die(1, "%s: timed out waiting for the processes", verb) end
		if failed and verb ~= "stop" then return 1 end
		return 0
	end
end

M.start = control("start", START_HELP)
M.stop = control("stop", STOP_HELP)
M.restart = control("restart", RESTART_HELP)

function M.signal(args)
	local opts, pos = cli.parse(args, common_opts())
	if not opts then return die(2, "%s\n%s", pos, SIGNAL_HELP) end
	if opts.help then print(SIGNAL_HELP) return 0 end
	if #pos < 2 then return die(2, "signal needs SIG and at least one NAME\n%s", SIGNAL_HELP) end
	local sig = table.remove(pos, 1)
	if not raw.signum(sig) then return die(2, "unknown signal %q", sig) end
	local resp, line, conn = call(opts, { cmd = "signal", signal = sig, targets = pos }, 30)
	if not resp then return line end
	conn:close()
	return 0
end

-- down -------------------------------------------------------------------------------------------
local DOWN_HELP = [[
usage: hum down [-f FILE]

Stops every process in reverse dependency order and ends the running hum;
returns once hum has exited (its socket closes).

  -f, --file FILE   config whose hum to stop

Exit status: 0, 1 on error, 3 when no hum is running.]]

function M.down(args)
	local opts, pos = cli.parse(args, common_opts())
	if not opts then return die(2, "%s\n%s", pos, DOWN_HELP) end
	if opts.help then print(DOWN_HELP) return 0 end
	if #pos > 0 then return die(2, "down takes no arguments\n%s", DOWN_HELP) end
	local resp, line, conn = call(opts, { cmd = "down" }, 30)
	if not resp then return line end
	if raw.isatty(2) then io.stderr:write("hum: stopping...\n") end
	-- the server closes every connection when it exits
	while true do
		local l, e = conn:read_line(nil)
		if not l then
			conn:close()
			if e == "eof" then return 0 end
			return die(1, "%s", e)
		end
	end
end

-- eval -------------------------------------------------------------------------------------------
local EVAL_HELP = [[
usage: hum eval [-f FILE] 'lua code'

Runs the code in the running hum's Lua state (as a reaction: hum.sleep and
hum.wait work; `hum` is the API) and prints what it printed, then the
values it returned.  An expression is returned as is: hum eval 'hum.ps()'.
Globals it sets persist between evals.

  -f, --file FILE   config whose hum to ask

Exit status: 0, 1 when the code failed (the error and traceback go to
stderr), 3 when no hum is running.]]

function M.eval(args)
	local opts, pos = cli.parse(args, common_opts())
	if not opts then return die(2, "%s\n%s", pos, EVAL_HELP) end
	if opts.help then print(EVAL_HELP) return 0 end
	if #pos ~= 1 then return die(2, "eval needs one argument: the code\n%s", EVAL_HELP) end
	local conn, code = connect(opts)
	if not conn then return code end
	local resp, err = request(conn, { cmd = "eval", code = pos[1] }, nil)
	conn:close()
	if not resp then return die(1, "%s", err) end
	if null(resp.output) then io.stdout:write(resp.output) end
	if not resp.ok then
		io.stdout:flush()
		return die(1, "%s", tostring(null(resp.error) or "eval failed"))
	end
	if null(resp.result) then io.stdout:write(resp.result, "\n") end
	return 0
end

cli.register("ps", M.ps, PS_HELP)
cli.register("status", M.status, STATUS_HELP)
cli.register("logs", M.logs, LOGS_HELP)
cli.register("start", M.start, START_HELP)
cli.register("stop", M.stop, STOP_HELP)
cli.register("restart", M.restart, RESTART_HELP)
cli.register("signal", M.signal, SIGNAL_HELP)
cli.register("down", M.down, DOWN_HELP)
cli.register("eval", M.eval, EVAL_HELP)

return M
