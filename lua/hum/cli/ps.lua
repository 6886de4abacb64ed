-- hum.cli.ps — `hum ps` and `hum status`: the running hum's processes, as a
-- table, in detail, or as the server's JSON.
local raw = require "hum.raw"
local util = require "hum.util"
local conn = require "hum.cli.conn"
local fmt = require "hum.cli.fmt"
local cjson = require "cjson"
local die = require("hum.cli").die

local M = {}

local null = conn.null
local STATE_COLOR = fmt.STATE_COLOR

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

-- The STATE column: `paused` for a running process stopped by a signal (its
-- state, running or ready, is in --json with "paused": true).
local function state_cell(p)
	local st = p.paused and "paused" or p.state
	return { st, STATE_COLOR[st] }
end

-- The reply's "procs" array as JSON, from a real parse of the reply (no
-- assumption about where the key sits in the line).
local function json_array_of(line)
	return raw.json_member(line, "procs") or "[]"
end

local print_table -- below

-- `hum ps --watch`: the table once, then a line per change from the
-- server's change feed (the `watch` request), until hum stops.  --json: the
-- feed's own lines.
local function watch(opts, resp, line, c)
	local color = fmt.want_color()
	if opts.json then
		io.stdout:write(line, "\n")
	else
		print_table(resp, color)
	end
	io.stdout:flush()
	while true do
		local l, e = c:read_line(nil)
		if not l then
			c:close()
			return e == "eof" and die(1, "connection to hum lost") or die(1, "%s", e)
		end
		if opts.json then
			io.stdout:write(l, "\n")
		end
		local ok, m = pcall(cjson.decode, l)
		if ok and type(m) == "table" then
			if m["end"] then
				c:close()
				if not opts.json then print(("hum %s"):format(null(m.reason) or "ended")) end
				return 0
			end
			if not opts.json and m.event == "change" then
				local stamp = os.date("%H:%M:%S", math.floor(m.time or raw.time()))
				for _, p in ipairs(m.procs or {}) do
					print(("%s %s %s%s%s"):format(stamp, p.name, fmt.paint(color, STATE_COLOR[p.state], p.state),
						null(p.pid) and (" pid " .. p.pid) or "", p.reason ~= "" and ("  " .. p.reason) or ""))
				end
				for _, name in ipairs(m.removed or {}) do print(("%s %s removed"):format(stamp, name)) end
			end
		end
		io.stdout:flush()
	end
end

function M.ps(opts, pos, cmd)
	if #pos > 0 then return die(2, "ps takes no arguments\n%s", cmd.help) end
	local resp, line, c = conn.call(opts, { cmd = opts.watch and "watch" or "ps" }, 30)
	if not resp then return line end
	if opts.watch then return watch(opts, resp, line, c) end
	c:close()
	if opts.json then
		io.stdout:write(json_array_of(line), "\n")
		return 0
	end
	print_table(resp, fmt.want_color())
	return 0
end

print_table = function(resp, color)
	local now = resp.time or raw.time()
	local rows = { { "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "EXIT", "GROUP", "INFO" } }
	for _, p in ipairs(resp.procs) do
		rows[#rows + 1] = {
			p.name, state_cell(p), null(p.pid) and tostring(p.pid) or "-",
			uptime(p, now), tostring(p.restarts), exit_text(p), null(p.group) or "-",
			p.reason ~= "" and p.reason or "",
		}
	end
	if #resp.procs == 0 then
		print("no processes")
		return 0
	end
	fmt.table_print(rows, color)
	return 0
end

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

-- The elements of a JSON array's text, each as text (the server's own
-- bytes, so nothing is reordered).  Valid JSON assumed: it came from a
-- real encoder.
local function split_array(text)
	local out, depth, start, i, n = {}, 0, nil, 1, #text
	while i <= n do
		local ch = text:sub(i, i)
		if ch == '"' then
			i = i + 1
			while i <= n do
				local c2 = text:sub(i, i)
				if c2 == "\\" then i = i + 1 elseif c2 == '"' then break end
				i = i + 1
			end
		elseif ch == "[" or ch == "{" then
			depth = depth + 1
			if depth == 2 then start = i end
		elseif ch == "]" or ch == "}" then
			if depth == 2 and start then out[#out + 1] = text:sub(start, i) start = nil end
			depth = depth - 1
		end
		i = i + 1
	end
	return out
end

local function def_rows(d)
	local cmdtext = type(d.cmd) == "table" and table.concat(d.cmd, " ") or tostring(d.cmd)
	local after = {}
	for _, a in ipairs(type(d.after) == "table" and d.after or {}) do
		after[#after + 1] = ("%s (%s)"):format(a.name, tostring(null(a.cond) or "?"))
	end
	local r, restart = null(d.restart), "-"
	if type(r) == "table" then
		local b = type(r.backoff) == "table" and r.backoff or {}
		restart = tostring(r.policy)
		if r.policy ~= "no" then
			restart = ("%s (max %s, backoff %gs..%gs, reset after %gs)"):format(r.policy,
				(r.max or -1) < 0 and "unlimited" or tostring(r.max), b[1] or 0, b[2] or 0, r.reset or 0)
		end
	end
	return {
		{ "command:", cmdtext },
		{ "cwd:", null(d.cwd) or "-" },
		{ "after:", #after > 0 and table.concat(after, ", ") or "-" },
		{ "probe:", null(d.probe) or "-" },
		{ "liveness:", null(d.liveness) or "-" },
		{ "restart:", restart },
	}
end

function M.status(opts, pos, cmd)
	if #pos == 0 then return die(2, "status needs a NAME\n%s", cmd.help) end
	local resp, line, c = conn.call(opts, { cmd = "status", names = pos }, 30)
	if not resp then return line end
	-- the definitions (command, cwd, after, probes, restart) come from the
	-- loop thread (`describe`), on the same connection; a hum that does not
	-- know `describe` just leaves them out
	local defs, dtext = {}, {}
	local dresp, dline = conn.request(c, { cmd = "describe", targets = pos }, 30)
	c:close()
	if dresp and dresp.ok and type(dresp.procs) == "table" then
		local texts = split_array(json_array_of(dline))
		for k, d in ipairs(dresp.procs) do defs[d.name], dtext[d.name] = d, texts[k] end
	end
	if opts.json then
		-- always an array, one object per selected process (as ps --json),
		-- each with its "definition" when known: spliced into the server's
		-- text, so its field order stays
		local parts = split_array(json_array_of(line))
		for k, p in ipairs(resp.procs) do
			local d = dtext[p.name]
			if d and parts[k] and parts[k]:sub(-1) == "}" then
				parts[k] = parts[k]:sub(1, -2) .. ',"definition":' .. d .. "}"
			end
		end
		io.stdout:write("[", table.concat(parts, ","), "]\n")
		return 0
	end
	local color = fmt.want_color()
	local now = resp.time or raw.time()
	for k, p in ipairs(resp.procs) do
		if k > 1 then print() end
		local groups = {}
		for _, g in ipairs(p.groups or {}) do groups[#groups + 1] = g end
		local rows = {
			{ "name:", p.name },
			{ "kind:", p.kind },
			{ "state:", p.paused and { p.state .. ", paused (stopped by a signal; SIGCONT continues it)",
				STATE_COLOR.paused } or { p.state, STATE_COLOR[p.state] } },
			{ "reason:", p.reason ~= "" and p.reason or "-" },
			{ "pid:", null(p.pid) and tostring(p.pid) or "-" },
			{ "remaining:", (p.remaining or 0) > 0 and ("%d process%s after the main one exited (pid %s)")
				:format(p.remaining, p.remaining == 1 and "" or "es", table.concat(p.remaining_pids or {}, ", ")) or "-" },
			{ "started:", fmt_time(p.started_at) .. (LIVE[p.state] and ("  (up " .. uptime(p, now) .. ")") or "") },
			{ "ended:", fmt_time(p.ended_at) },
			{ "exit:", exit_text(p) },
			{ "restarts:", tostring(p.restarts) },
			{ "groups:", #groups > 0 and table.concat(groups, ", ") or "-" },
			{ "log:", ("%d lines, %s%s"):format(p.lines, fmt_bytes(p.bytes),
				p.dropped > 0 and (", " .. p.dropped .. " dropped") or "") },
		}
		if defs[p.name] then
			for _, row in ipairs(def_rows(defs[p.name])) do rows[#rows + 1] = row end
		end
		fmt.table_print(rows, color)
	end
	return 0
end

return M
