-- hum.control — the control socket's server side, in `hum up`: runs the
-- commands clients send (hum.cli.control is the other side), opens and
-- closes the socket, and forks `hum up -d` into the background.
--
-- C (core/api/, lua/bind/api_server.c) owns the socket and answers reads
-- (ps, status, logs) on the API thread from snapshots.  Commands (start,
-- stop, restart, signal, down, eval) arrive here as "command" events from
-- the dispatcher with the raw request line; each runs as a reaction (a
-- coroutine), so it can wait for the processes to reach the state it asked
-- for, and answers exactly once with raw.api_reply(id, ok, json): json is
-- the reply's fields as one object; the server (core/api) builds the
-- envelope {"ok":..,"id":..,...fields} with a real encoder.
--
-- Replies:
--   start/stop/restart -> {"ok":true,"procs":[{"name","state","pid","reason"}...]}
--                         ("timeout":true if a state was not reached in time)
--   signal             -> {"ok":true,"procs":[...]} or ok=false when a target
--                         was not running
--   run {"task":T}     -> runs task T here (`hum run T` while this hum runs):
--                         started like `hum start T` (its dependencies are
--                         reused, missing ones started; a task that ran
--                         before runs again; one running now is waited
--                         for), answered once its run is over:
--                         {"ok":true,"task","state","exit_code","signal",
--                          "reason","start_seq","last_seq"}: the task's
--                         log range of this run is (start_seq, last_seq];
--                         or ok=false with "error" when T can never start
--                         ("bad cannot start: db failed").  The output
--                         itself is read with `logs` + follow.
--   describe           -> {"ok":true,"procs":[{"name","kind","cmd","cwd",
--                         "after":[{"name","cond"}],"probe","liveness",
--                         "restart":{"policy","max","backoff":[a,b],"reset"},
--                         "autostart"}...]}: the definitions behind the
--                         targets (`hum status` shows them; C's snapshots
--                         lack them); read-only, answered at once, also
--                         while hum is stopping.  probe/liveness are text
--                         ("tcp localhost:5432 (interval 1s, timeout 30s)")
--                         or null.
--   down               -> {"ok":true,"stopping":true}; the socket closes when
--                         hum has stopped everything and exits
--   eval               -> {"ok":true,"output":"printed text","result":"..."}
--                         or {"ok":false,"error":"traceback"}
local raw = require "hum.raw"
local cjson = require "cjson"
local runtime = require "hum.runtime"
local reactions = require "hum.reactions"
local util = require "hum.util"
local limits = require "hum.limits"

local M = {}

M.path = nil          -- the socket's path while listening
M.controlled = false  -- a client has started/stopped something

-- Replies are UTF-8 JSON whatever bytes they carry (a reason quoting a path,
-- eval output, a name from the config): lua-cjson passes bytes through, so
-- every string is cleaned first, as C's writer (core/api/jsonw.c) does:
-- each byte that does not start a valid sequence (bad lead or continuation,
-- overlong, surrogate, past U+10FFFF, cut short) becomes U+FFFD.
local byte, concat = string.byte, table.concat
local function utf8_clean(s)
	if not s:find("[\128-\255]") then return s end
	local out, i, n = {}, 1, #s
	while i <= n do
		local c, len, lo, hi = byte(s, i), 0, 0x80, 0xBF
		if c < 0x80 then len = 1
		elseif c >= 0xC2 and c <= 0xDF then len = 2
		elseif c >= 0xE0 and c <= 0xEF then
			len = 3
			if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
		elseif c >= 0xF0 and c <= 0xF4 then
			len = 4
			if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
		end
		local good = len > 0 and i + len - 1 <= n
		for k = 1, len - 1 do
			if not good then break end
			local d = byte(s, i + k)
			if k == 1 then good = d >= lo and d <= hi else good = d >= 0x80 and d <= 0xBF end
		end
		if good then
			out[#out + 1] = s:sub(i, i + len - 1)
			i = i + len
		else
			out[#out + 1] = "\239\191\189" -- U+FFFD
			i = i + 1
		end
	end
	return concat(out)
end
M.utf8_clean = utf8_clean

local function clean(v, depth)
	if type(v) == "string" then return utf8_clean(v) end
	if type(v) ~= "table" or depth > 32 then return v end
	local t = {}
	for k, x in pairs(v) do t[clean(k, depth + 1)] = clean(x, depth + 1) end
	return setmetatable(t, getmetatable(v))
end

local function encode(t)
	t = clean(t, 0)
	return next(t or {}) and cjson.encode(t) or "{}"
end

-- Always answers: a value cjson cannot encode becomes an error reply.
local function reply(id, ok, t)
	local okc, json = pcall(encode, t)
	if not okc then
		ok, json = false, encode({ error = "cannot encode the reply: " .. tostring(json) })
	end
	raw.api_reply(id, ok, json)
end

-- Targets (names, groups, globs) -> instances, or nil, message.
local function resolve(req)
	local targets = req.targets
	if type(targets) == "string" then targets = { targets } end
	if type(targets) ~= "table" or #targets == 0 then return nil, "no targets (names, groups or globs)" end
	local out, seen = {}, {}
	for _, t in ipairs(targets) do
		if type(t) ~= "string" then return nil, "targets must be strings" end
		local list, serr = runtime.select(t)
		if serr then return nil, serr end
		if #list == 0 then return nil, ("nothing matches %q"):format(t) end
		for _, i in ipairs(list) do
			if not seen[i] then seen[i] = true out[#out + 1] = i end
		end
	end
	return out
end

local function brief(i)
	local s = raw.status(i.id)
	-- retired (rt:remove) while the command waited
	if not s then return { name = i.name, state = "removed" } end
	return { name = i.name, state = s.state, pid = s.pid ~= 0 and s.pid or nil,
		reason = s.reason ~= "" and s.reason or nil, exit_code = s.exit_code, signal = s.signal }
end

local function briefs(list)
	local out = {}
	for k, i in ipairs(list) do out[k] = brief(i) end
	return out
end

-- Waits (yielding the reaction) until done(i) holds for every instance or
-- timeout seconds pass; returns true, or false on timeout.
local function wait_all(list, done, timeout)
	local deadline = raw.clock() + timeout
	while true do
		local pending
		for _, i in ipairs(list) do
			local s = raw.status(i.id)
			-- a retired process waits for nothing more (brief says "removed")
			if s and not done(i, s) then pending = i break end
		end
		if not pending then return true end
		local left = deadline - raw.clock()
		if left <= 0 then return false end
		-- woken by the next state change of that instance (or the timeout)
		reactions.wait_for("state:" .. pending.id, left, "control command")
	end
end

local ACTIVE = runtime.ACTIVE

local function grace_of(list)
	local g = 0
	for _, i in ipairs(list) do
		local spec = rawget(i.def, "stop_spec")
		g = math.max(g, spec and spec.grace or 5)
	end
	return g
end

local COMMANDS = {}

function COMMANDS.start(req)
	local list, err = resolve(req)
	if not list then return nil, err end
	M.controlled = true
	for _, i in ipairs(list) do runtime.start_instance(i) end
	local ok = wait_all(list, function(_, s) return s.state ~= "starting" and s.state ~= "stopping" end,
		tonumber(req.timeout) or 30)
	return { procs = briefs(list), timeout = not ok or nil }
end

function COMMANDS.stop(req)
	local list, err = resolve(req)
	if not list then return nil, err end
	M.controlled = true
	for _, i in ipairs(list) do runtime.stop_instance(i) end
	-- stopped: the whole run, including what remained of a finished one
	local ok = wait_all(list, function(_, s) return not ACTIVE[s.state] and s.remaining == 0 end,
		tonumber(req.timeout) or grace_of(list) + 10)
	return { procs = briefs(list), timeout = not ok or nil }
end

function COMMANDS.restart(req)
	local list, err = resolve(req)
	if not list then return nil, err end
	M.controlled = true
	local before = {}
	for _, i in ipairs(list) do
		local s = raw.status(i.id) or { pid = 0, started_at = 0 }
		before[i] = { pid = s.pid, started = s.started_at }
		runtime.restart_instance(i)
	end
	-- done: a new run has begun (new pid or start time), or the process
	-- ended up in a state that no longer moves by itself
	local ok = wait_all(list, function(i, s)
		if s.state == "starting" or s.state == "stopping" then return false end
		local b = before[i]
		return (s.pid ~= 0 and (s.pid ~= b.pid or s.started_at ~= b.started)) or not ACTIVE[s.state]
	end, tonumber(req.timeout) or grace_of(list) + 30)
	return { procs = briefs(list), timeout = not ok or nil }
end

-- describe: a probe as one line of text, or cjson.null.
local function probe_text(pr)
	if pr == nil then return cjson.null end
	local kind, what = pr.__probe, ""
	if kind == "tcp" then
		what = (" %s:%s"):format(tostring(pr.host or "localhost"), tostring(pr.port))
	elseif kind == "http" then
		what = " " .. tostring(pr.url or pr.path or "")
	elseif kind == "line" then
		what = (" %q"):format(tostring(pr.pattern))
	elseif kind == "exec" then
		local c = pr.cmd or pr.command
		what = " " .. (type(c) == "table" and table.concat(c, " ") or tostring(c or ""))
	end
	local opts = {}
	for _, k in ipairs({ "interval", "period", "timeout" }) do
		if pr[k] then opts[#opts + 1] = ("%s %gs"):format(k, pr[k]) end
	end
	if pr.retries then opts[#opts + 1] = ("retries %g"):format(pr.retries) end
	return ("%s%s%s"):format(kind, what, #opts > 0 and (" (" .. table.concat(opts, ", ") .. ")") or "")
end

-- One instance's definition as a JSON object.  `after` is spliced in by
-- hand: lua-cjson writes an empty table as {}, and `after` is always an
-- array.
local function describe(i)
	local d = i.def
	local after = {}
	for k, e in ipairs(i.deps or {}) do
		after[k] = encode({ name = e.di.name, cond = e.cond })
	end
	local r = d.restart_spec or {}
	local obj = encode({
		name = i.name, kind = d.kind,
		cmd = type(d.cmd) == "table" and d.cmd or tostring(d.cmd),
		cwd = i.cwd or d.cwd or cjson.null,
		probe = probe_text(d.ready_probe), liveness = probe_text(d.liveness),
		restart = { policy = r.policy, max = r.max, backoff = { r.initial, r.cap }, reset = r.reset },
		autostart = d.autostart ~= false,
	})
	return obj:sub(1, -2) .. ',"after":[' .. table.concat(after, ",") .. "]}"
end

function COMMANDS.describe(req, id)
	local list, err = resolve(req)
	if not list then return nil, err end
	local out = {}
	for k, i in ipairs(list) do out[k] = describe(i) end
	raw.api_reply(id, true, '{"procs":[' .. table.concat(out, ",") .. "]}")
	return false -- answered
end

function COMMANDS.run(req)
	local name = req.task
	if type(name) ~= "string" then return nil, "run needs \"task\" (a task's name)" end
	local i = runtime.find(name)
	if not i or i.def.kind ~= "task" then return nil, ("no task %q in the running hum"):format(name) end
	local removed = ("%s was removed"):format(name)
	local s0 = raw.status(i.id)
	if not s0 or runtime.gone(i) then return nil, removed end
	-- a run in progress is the one reported; otherwise the next one
	local attach = ACTIVE[i.state]
	runtime.start_instance(i)
	while true do
		local s = raw.status(i.id)
		if not s or i.removed then return nil, removed, { state = "removed" } end
		if runtime.FINAL[i.state] and runtime.FINAL[s.state]
			and (attach or s.run > s0.run or not i.wanted or runtime.shutting_down()) then
			return { task = name, state = s.state, exit_code = s.exit_code, signal = s.signal,
				reason = s.reason ~= "" and s.reason or nil, start_seq = s0.last_seq, last_seq = s.last_seq }
		end
		local gate, why = runtime.gate(i)
		if i.state == "pending" and gate == false then
			return nil, ("%s cannot start: %s"):format(name, why), { state = "pending" }
		end
		-- woken by its next state change: a start, an exit, a new reason
		reactions.wait_for("state:" .. i.id, nil, "control command")
	end
end

function COMMANDS.signal(req)
	local sig = req.signal
	if (type(sig) ~= "string" and type(sig) ~= "number") or not raw.signum(sig) then
		return nil, ("unknown signal %q"):format(tostring(sig))
	end
	local list, err = resolve(req)
	if not list then return nil, err end
	local failed = {}
	for _, i in ipairs(list) do
		local ok, e = raw.signal(i.id, sig)
		if not ok then
			failed[#failed + 1] = ("%s: %s"):format(i.name, e == "No such process" and "not running" or tostring(e))
		end
	end
	if #failed > 0 then return nil, table.concat(failed, "; ") end
	return { procs = briefs(list) }
end

function COMMANDS.down(req, id)
	local already = runtime.shutting_down()
	reply(id, true, { stopping = true, already = already or nil })
	if not already then
		raw.log("stopping everything (hum down)")
		runtime.shutdown() -- exit status: 1 if anything failed during the run
	end
	return false -- answered
end

-- eval: a persistent environment, so `hum eval 'x = 1'` then `hum eval x` works.
local eval_env
local function inspect(v, depth, seen)
	local t = type(v)
	if t == "string" then return ("%q"):format(v) end
	if t ~= "table" then return tostring(v) end
	depth, seen = depth or 0, seen or {}
	if seen[v] then return "<cycle>" end
	if depth > 3 then return "{...}" end
	seen[v] = true
	local parts, n = {}, 0
	for k = 1, #v do
		n = n + 1
		if n > 100 then parts[#parts + 1] = "..." break end
		parts[#parts + 1] = inspect(v[k], depth + 1, seen)
	end
	local keys = {}
	for k in pairs(v) do
		if not (type(k) == "number" and k >= 1 and k <= #v and k % 1 == 0) then keys[#keys + 1] = k end
	end
	table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
	for _, k in ipairs(keys) do
		n = n + 1
		if n > 100 then parts[#parts + 1] = "..." break end
		local ks = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. inspect(k, depth + 1, seen) .. "]")
		parts[#parts + 1] = ks .. " = " .. inspect(v[k], depth + 1, seen)
	end
	seen[v] = nil
	return "{ " .. table.concat(parts, ", ") .. " }"
end
M.inspect = inspect

-- print() inside eval code: into the reply while that eval runs (its
-- coroutine), and as hum's own lines when called later by something the
-- eval left behind (a timer, a reaction, a listener), which would
-- otherwise print into a reply already sent.
local capturing = setmetatable({}, { __mode = "k" }) -- coroutine -> output lines
local function eval_print(...)
	local out = capturing[coroutine.running() or false]
	if not out then return _G.print(...) end
	local parts = {}
	for k = 1, select("#", ...) do parts[k] = tostring((select(k, ...))) end
	out[#out + 1] = table.concat(parts, "\t") .. "\n"
end

function COMMANDS.eval(req)
	if type(req.code) ~= "string" then return nil, "eval needs \"code\" (a string)" end
	local out = {}
	if not eval_env then
		eval_env = setmetatable({ hum = require "hum", print = eval_print }, { __index = _G })
	end
	capturing[coroutine.running() or false] = out
	local fn, err = loadstring("return " .. req.code, "=eval")
	if not fn then fn, err = loadstring(req.code, "=eval") end
	if not fn then return nil, err end
	setfenv(fn, eval_env)
	-- interpreted, so the runaway guard can stop an endless loop
	jit.off(fn, true)
	local res = { xpcall(fn, function(e)
		-- the traceback down to the eval chunk, not hum's own frames
		local tb = debug.traceback(tostring(e), 2)
		local cut = tb:find("\n%s*%[C%]: in function 'xpcall'")
		return cut and tb:sub(1, cut - 1) or tb
	end) }
	capturing[coroutine.running() or false] = nil
	if not res[1] then
		return nil, tostring(res[2]), { output = table.concat(out) }
	end
	local vals = {}
	for k = 2, table.maxn(res) do vals[#vals + 1] = inspect(res[k]) end
	return { output = table.concat(out), result = #vals > 0 and table.concat(vals, "\t") or nil }
end

-- Called by the dispatcher (a runtime "command" listener) on the loop thread.
function M.handle(id, payload)
	local ok, req = pcall(cjson.decode, payload)
	if not ok or type(req) ~= "table" then
		return reply(id, false, { error = "malformed request" })
	end
	local fn = COMMANDS[req.cmd]
	if not fn then return reply(id, false, { error = ("unknown command %q"):format(tostring(req.cmd)) }) end
	if runtime.shutting_down() and req.cmd ~= "down" and req.cmd ~= "eval" and req.cmd ~= "describe" then
		return reply(id, false, { error = "hum is stopping" })
	end
	reactions.run({
		label = "control command " .. req.cmd,
		fn = function()
			local okc, res, err, extra = xpcall(fn, function(e) return debug.traceback(tostring(e), 2) end, req, id)
			if not okc then
				reply(id, false, { error = "internal error: " .. tostring(res) })
			elseif res == false then
				return -- answered by the command itself
			elseif res == nil then
				local t = extra or {}
				t.error = tostring(err)
				reply(id, false, t)
			else
				reply(id, true, res)
			end
		end,
	})
end

-- Keeps `hum up` alive once a client has taken control (a `hum stop` of the
-- last service must not end hum); before that, the usual rule: exit when
-- nothing can make progress.
local function on_idle()
	return M.controlled -- true: stay; otherwise the runtime finishes
end

function M.stop()
	if raw.api_running() then raw.api_stop() end
	M.path = nil
end

-- Opens the socket for the project of `file`.  Returns true, or false and a
-- message (another instance runs here, or the socket cannot be opened).
function M.start(file, opts)
	local dir = util.dirname(file)
	local path, stale = raw.api_start(dir)
	if not path then
		raw.detach_notify(stale)
		return false, stale
	end
	M.path = path
	if stale then raw.log("removed a stale control socket left by an earlier hum") end
	runtime.listen("command", function(id, req) M.handle(id, req) return true end)
	runtime.listen("idle", on_idle)
	-- The API thread reads the store, so it must stop before the store is
	-- freed: when the loop returns.
	runtime.listen("teardown", M.stop)
	-- the daemon holds the project's lock now: its log may start afresh
	local lf = M.logfile
	if lf then
		-- a new file per run (the previous run's is hum.log.1), headed with
		-- the date; rotated by size too (HUM_LOG_MAX bytes, default 64 MiB)
		local ok, err = raw.output_file(lf.path, lf.max, true)
		if not ok then raw.log(("%s: not rotated: %s"):format(lf.path, err)) end
		local older = lf.path .. ".1"
		raw.log(("%s: hum up -d (pid %d) for %s%s")
			:format(os.date("%Y-%m-%d %H:%M:%S %z"), lf.pid, lf.config,
				util.exists(older) and ("; the previous run's log is " .. older) or ""))
		if lf.replaced then raw.log(lf.replaced) end
	end
	raw.detach_notify()
	return true
end

-- `hum up -d`: fork into the background before anything starts.  Returns
-- nil in the daemon (which goes on with `up`; M.logfile describes its log),
-- or the exit code for the original process once the daemon is listening
-- or has failed.
function M.detach(file)
	-- checked before anything starts; nil: unset (the default bound)
	local max_text, max = os.getenv("HUM_LOG_MAX") or "", nil
	if max_text ~= "" then
		local err
		max, err = limits.size(max_text, "HUM_LOG_MAX")
		if not max then
			io.stderr:write("hum: ", err, "\n")
			return 2
		end
	end
	local dir = util.dirname(file)
	local state, err = raw.api_state_dir(dir)
	if not state then
		io.stderr:write("hum: ", err, "\n")
		return 1
	end
	local logfile = state .. "/hum.log"
	local who, ok, info = raw.detach(logfile)
	if who == "child" then
		-- in the background nobody watches for the end: stay until
		-- `hum down` (or a signal), even once every task has finished
		M.controlled = true
		M.logfile = { path = logfile, pid = ok, config = file, replaced = info, max = max }
		return nil
	end
	if ok then
		io.stdout:write(("hum: running in the background (pid %s); output in %s\n"):format(info, logfile))
		return 0
	end
	io.stderr:write("hum: ", info, "\n")
	if info:find("exited before", 1, true) then
		local f = io.open(logfile)
		if f then
			local text = f:read("*a")
			f:close()
			local tail = text:sub(-2000)
			if tail ~= "" then io.stderr:write(tail, tail:sub(-1) == "\n" and "" or "\n") end
		end
	end
	return 1
end

return M
