-- hum.cli.control — the commands that change the running hum: start, stop,
-- restart, signal, down, eval.  The other side of each is hum.control, in
-- `hum up`.
local raw = require "hum.raw"
local conn = require "hum.cli.conn"
local fmt = require "hum.cli.fmt"
local die = require("hum.cli").die

local M = {}

local null = conn.null

-- Prints each process's new state; returns true when one of them failed.
local function print_procs(resp)
	local rows = {}
	local failed = false
	for _, p in ipairs(resp.procs or {}) do
		local info = null(p.reason) or ""
		if null(p.pid) then info = "pid " .. p.pid .. (info ~= "" and ", " .. info or "") end
		rows[#rows + 1] = { p.name, { p.state, fmt.STATE_COLOR[p.state] }, info }
		if p.state == "failed" then failed = true end
	end
	if #rows > 0 then fmt.table_print(rows, fmt.want_color()) end
	return failed
end

-- start, stop, restart: waits for the processes, then prints their states.
local function control(opts, pos, cmd)
	local verb = cmd.name
	if #pos == 0 then return die(2, "%s needs at least one NAME, GROUP or GLOB\n%s", verb, cmd.help) end
	local resp, line, c = conn.call(opts, { cmd = verb, targets = pos }, nil)
	if not resp then return line end
	c:close()
	local failed = print_procs(resp)
	if resp.timeout then return die(1, "%s: timed out waiting for the processes", verb) end
	if failed and verb ~= "stop" then return 1 end
	return 0
end
M.start, M.stop, M.restart = control, control, control

function M.signal(opts, pos, cmd)
	if #pos < 2 then return die(2, "signal needs SIG and at least one NAME\n%s", cmd.help) end
	local sig = table.remove(pos, 1)
	if not raw.signum(sig) then return die(2, "unknown signal %q", sig) end
	local resp, line, c = conn.call(opts, { cmd = "signal", signal = sig, targets = pos }, 30)
	if not resp then return line end
	c:close()
	return 0
end

-- How long hum may take to exit once it has closed its connections (its
-- last steps: the final log line, freeing, exit), seconds.
local EXIT_AFTER_CLOSE = 30

function M.down(opts, pos, cmd)
	if #pos > 0 then return die(2, "down takes no arguments\n%s", cmd.help) end
	local c, code = conn.connect(opts)
	if not c then return code end
	-- Before the request: the reply then proves the pidfd names this hum.
	-- Without pidfds (Linux < 5.3) the connection's end is all there is.
	local watched = c:watch_server()
	local resp, line = conn.request(c, { cmd = "down" }, 30)
	if not resp then
		c:close()
		return die(1, "%s", line)
	end
	if not resp.ok then
		c:close()
		return die(1, "%s", tostring(null(resp.error) or "request failed"))
	end
	if raw.isatty(2) then io.stderr:write("hum: stopping...\n") end
	-- The server closes every connection when it stops serving, before
	-- its last steps; "returns once it has exited" means the process.
	while true do
		local l, e = c:read_line(nil)
		if not l then
			if e ~= "eof" then
				c:close()
				return die(1, "%s", e)
			end
			break
		end
	end
	if watched then
		local gone, e = c:wait_server(EXIT_AFTER_CLOSE)
		c:close()
		if not gone then
			return die(1, "hum closed its connections but had not exited %ds later (%s)", EXIT_AFTER_CLOSE, e)
		end
		return 0
	end
	c:close()
	return 0
end

function M.eval(opts, pos, cmd)
	if #pos ~= 1 then return die(2, "eval needs one argument: the code\n%s", cmd.help) end
	local c, code = conn.connect(opts)
	if not c then return code end
	local resp, err = conn.request(c, { cmd = "eval", code = pos[1] }, nil)
	c:close()
	if not resp then return die(1, "%s", err) end
	if null(resp.output) then io.stdout:write(resp.output) end
	if not resp.ok then
		io.stdout:flush()
		return die(1, "%s", tostring(null(resp.error) or "eval failed"))
	end
	if null(resp.result) then io.stdout:write(resp.result, "\n") end
	return 0
end

return M
