-- hum.cli.logs — `hum logs`: recent and followed output of the running hum,
-- merged in the order it was produced, as text or as the server's JSON lines.
local raw = require "hum.raw"
local cjson = require "cjson"
local conn = require "hum.cli.conn"
local fmt = require "hum.cli.fmt"
local die = require("hum.cli").die

local M = {}

local null = conn.null

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

-- A function that prints one decoded LINE object as `hum logs` does: time,
-- the name padded to width and coloured as in hum up's output (ids: name ->
-- process id), the stream's marker, the text.  Also `hum run`'s, for a task
-- run inside a running hum.
function M.printer(out, width, color, ids, tty)
	local fitted = setmetatable({}, { __index = function(t, name)
		-- a name is no terminal control sequence; one column width
		local f = fmt.fit_name(fmt.safe(name), width)
		t[name] = f
		return f
	end })
	return function(l)
		local name = fitted[l.name]
		local ts = os.date("%H:%M:%S", math.floor(l.time))
		local sys = l.stream == "sys"
		local sep = l.stream == "err" and (color and " \027[31m!\027[0m " or " ! ")
			or sys and " * " or " \226\148\130 "
		-- on a terminal, a colour a line leaves on must not spill into
		-- the next prefix (as in hum up's output)
		local reset = tty and l.line:find("\027", 1, true) and "\027[0m" or ""
		if color then
			local paint = sys and "1" or fmt.PALETTE[(ids[l.name] or 0) % #fmt.PALETTE + 1]
			out:write("\027[2m", ts, "\027[0m \027[", paint, "m", name, "\027[0m", sep, l.line, reset, "\n")
		else
			out:write(ts, " ", name, sep, l.line, reset, "\n")
		end
	end
end

function M.logs(opts, pos)
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
	local c, code = conn.connect(opts)
	if not c then return code end
	local color = fmt.want_color() and not opts.json
	-- on a terminal, a colour a line leaves on must not spill into the next
	-- prefix (as in hum up's output)
	local tty = raw.isatty(1) and not opts.json
	-- names -> ids (colours as in hum up's output) and the column width
	local ids, names = {}, {}
	if not opts.json then
		local resp, perr = conn.request(c, { cmd = "ps" }, 30)
		if not resp then return die(1, "%s", perr) end
		if not resp.ok then return die(1, "%s", tostring(null(resp.error) or "ps failed")) end
		for _, p in ipairs(resp.procs) do
			ids[p.name] = p.id
			names[#names + 1] = p.name
		end
	end
	local width = fmt.name_width(names)
	local ok, err = c:send(cjson.encode(req) .. "\n")
	if not ok then
		local l = c:read_line(1)
		local okd, r = pcall(cjson.decode, l or "")
		return die(1, "%s", okd and type(r) == "table" and r.error or err)
	end
	if not opts.follow then io.stdout:setvbuf("full") end
	local out = io.stdout
	local print_line = M.printer(out, width, color, ids, tty)
	local nlines = 0
	while true do
		local line, e = c:read_line(nil)
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
				print_line(cjson.decode(line))
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
				-- a follower ends with a line that says why
				local why = null(r.reason)
				if why then
					io.stderr:write(("hum: end of the logs: %s\n"):format(
						why == "server stopping" and "hum stopped" or why == "removed"
						and "the followed processes were removed" or why))
				end
				c:close()
				return 0
			end
		end
	end
end

return M
