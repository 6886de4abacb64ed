-- hum.api — the public `hum` module that hum.lua files and reactions use.
--
-- Definitions come from hum.define; reading and control go through the
-- runtime, which talks to C through hum.raw.  Values returned by status(),
-- ps() and logs() are copies of immutable snapshots: they never change after
-- they are returned (call again for fresh ones).
local raw = require "hum.raw"
local define = require "hum.define"
local reactions = require "hum.reactions"
local runtime = require "hum.runtime"
local probes = require "hum.probes"
local limits = require "hum.limits"

local hum = {}
local Proc = define.Proc
local defs = define.defs

hum.version = "0.1.0"
hum.dir = nil -- the config's directory, absolute (set by hum.config when it loads)
hum.service, hum.task, hum.group = define.service, define.task, define.group
hum.ready = define.ready
hum.env, hum.env_file = define.env, define.env_file
hum.sleep, hum.after, hum.every = reactions.sleep, reactions.after, reactions.every
hum.clock = raw.clock -- monotonic seconds, for measuring intervals
hum.time = raw.time   -- wall-clock seconds since the epoch

local function running(what)
	if not runtime.current then
		error(what .. ": processes are not running yet (call it from a reaction)", 3)
	end
end

local function where(level)
	local i = debug.getinfo(level + 1, "Sl")
	return i and ("%s:%d"):format(i.short_src, i.currentline) or "?"
end

-- Reactions ---------------------------------------------------------------------
local EVENTS = { start = true, ready = true, exit = true, line = true, state = true }
local HUM_EVENTS = { ready = true, exit = true, shutdown = true, start = true, state = true }

local Reaction = {}
Reaction.__index = Reaction
-- Takes effect at once, even for an event whose reactions are being run.
function Reaction:off()
	local list = self.list
	for k, r in ipairs(list) do
		if r == self then
			table.remove(list, k)
			self.removed = true
			if self.proc then runtime.watch_lines(self.proc) end -- maybe no line listener left
			return true
		end
	end
	return false
end

function Proc:on(event, a, b)
	if not EVENTS[event] then
		error(("%s:on: unknown event %q (start, ready, exit, line, state)"):format(self.name, tostring(event)), 2)
	end
	local r = setmetatable({ label = ("%s:on(%q) at %s"):format(self.name, event, where(2)) }, Reaction)
	if event == "line" then
		if type(a) == "table" then
			r.pattern, r.stream, r.fn = a.pattern or a[1], a.stream, b
		else
			r.pattern, r.fn = a, b
		end
		if type(r.pattern) ~= "string" then error(self.name .. ':on("line", pattern, fn): pattern must be a string', 2) end
		local ok, err = pcall(string.find, "", r.pattern)
		if not ok then error(("%s:on(\"line\"): bad pattern: %s"):format(self.name, tostring(err):gsub("^.-:%d+: ", "")), 2) end
		if r.stream and r.stream ~= "out" and r.stream ~= "err" then
			error(self.name .. ':on("line"): stream must be "out" or "err"', 2)
		end
		r.proc = self
	else
		r.fn = a
	end
	if type(r.fn) ~= "function" then error(("%s:on(%q): expected a function"):format(self.name, event), 2) end
	local list = self.reactions[event]
	if not list then
		list = {}
		self.reactions[event] = list
	end
	r.list = list
	list[#list + 1] = r
	if event == "line" then runtime.watch_lines(self) end
	return r
end

function hum.on(event, fn)
	if not HUM_EVENTS[event] then
		error(("hum.on: unknown event %q (ready, exit, shutdown, start, state)"):format(tostring(event)), 2)
	end
	if type(fn) ~= "function" then error("hum.on: expected a function", 2) end
	local r = setmetatable({ fn = fn, label = ("hum.on(%q) at %s"):format(event, where(2)) }, Reaction)
	local list = defs.hooks[event]
	if not list then
		list = {}
		defs.hooks[event] = list
	end
	r.list = list
	list[#list + 1] = r
	return r
end

-- Reading --------------------------------------------------------------------------
-- (raw reads answer nil for a process C retired before Lua heard of it:
-- a removal's last moments; such an instance is left out.)
function Proc:status()
	running(self.name .. ":status")
	local list = runtime.instances(self)
	if #list == 1 then return raw.status(list[1].id) or {} end
	local out = {}
	for _, i in ipairs(list) do out[#out + 1] = raw.status(i.id) end
	return out
end

function Proc:logs(opts)
	running(self.name .. ":logs")
	opts = opts or {}
	local n = opts.n or 100
	local out = {}
	for _, i in ipairs(runtime.instances(self)) do
		local lines = raw.logs(i.id, (opts.grep or opts.stream) and 1e9 or n) or {}
		for _, l in ipairs(lines) do
			if (not opts.stream or l.stream == opts.stream) and (not opts.grep or l.line:find(opts.grep)) then
				l.name = i.name
				out[#out + 1] = l
			end
		end
	end
	if #runtime.instances(self) > 1 then table.sort(out, function(x, y) return x.seq < y.seq end) end
	if #out > n then
		local tail = {}
		for k = #out - n + 1, #out do tail[#tail + 1] = out[k] end
		out = tail
	end
	return out
end

function hum.ps() running("hum.ps") return raw.ps() end

-- A process (definition) by name, or a replica ("web.2") as a one-instance view.
function hum.get(name)
	local p = defs.byname[name]
	if p then return p end
	local i = runtime.find(name)
	if i then
		return setmetatable({ name = i.name, kind = i.def.kind, instances = { i }, def = i.def,
			reactions = i.def.reactions, after = i.def.after }, Proc)
	end
	return nil
end

-- Control -----------------------------------------------------------------------
local function each(p, fn)
	running(p.name)
	for _, i in ipairs(runtime.instances(p)) do fn(i) end
	return true
end

function Proc:start() return each(self, runtime.start_instance) end
function Proc:stop() return each(self, runtime.stop_instance) end
function Proc:restart() return each(self, runtime.restart_instance) end
function Proc:signal(sig)
	if not raw.signum(sig) then error(("%s:signal: unknown signal %q"):format(self.name, tostring(sig)), 2) end
	return each(self, function(i) raw.signal(i.id, sig) end)
end

local function select_or_error(pattern, what)
	if type(pattern) ~= "string" then error(what .. ": expected a name, group or glob", 3) end
	local list, err = runtime.select(pattern)
	if err then return nil, ("%s: %s"):format(what, err) end
	if #list == 0 then return nil, ("%s: nothing matches %q"):format(what, pattern) end
	return list
end

function hum.start(pattern)
	running("hum.start")
	local list, err = select_or_error(pattern, "hum.start")
	if not list then return nil, err end
	for _, i in ipairs(list) do runtime.start_instance(i) end
	return #list
end

function hum.stop(pattern)
	running("hum.stop")
	local list, err = select_or_error(pattern, "hum.stop")
	if not list then return nil, err end
	for _, i in ipairs(list) do runtime.stop_instance(i) end
	return #list
end

function hum.restart(pattern)
	running("hum.restart")
	local list, err = select_or_error(pattern, "hum.restart")
	if not list then return nil, err end
	for _, i in ipairs(list) do runtime.restart_instance(i) end
	return #list
end

function hum.shutdown(code)
	running("hum.shutdown")
	runtime.shutdown(code) -- nil: 1 if anything failed during the run, else 0
end

-- Helpers that suspend the calling reaction ----------------------------------------
local DURABLE = { ready = true, started = true }

-- hum.wait(p, what, timeout): for a process with several instances (scale >
-- 1), until every instance meets the condition.  "ready" and "started" are
-- judged on each instance's current state, so an instance that stops being
-- ready while the others catch up is waited for again; a state name counts
-- for an instance once it has been in that state during the wait (or was at
-- the call), so passing states such as "running" are not missed; "exit"
-- waits for the next exit of every instance.
function hum.wait(p, what, timeout)
	if type(p) == "string" then p = hum.get(p) or error(("hum.wait: no process %q"):format(p), 2) end
	if getmetatable(p) ~= Proc then error("hum.wait: expected a process", 2) end
	what = what or "ready"
	if not (DURABLE[what] or what == "exit" or runtime.FINAL[what] or runtime.ACTIVE[what] or what == "pending") then
		error(("hum.wait: unknown condition %q"):format(tostring(what)), 2)
	end
	if timeout ~= nil then limits.need(timeout, "hum.wait timeout", 2, "hum.wait: the timeout") end
	reactions.current("hum.wait")
	local list = runtime.instances(p)
	-- every instance was removed (rt:remove): nothing to wait for, ever
	if not list[1] then return nil, p.name .. " was removed" end
	local deadline = timeout and raw.now() + timeout
	local function left() return deadline and math.max(0, deadline - raw.now()) end
	local keys, by_key = {}, {}
	local prefix = what == "exit" and "exit:" or "state:"
	for k, i in ipairs(list) do
		keys[k] = prefix .. i.id
		by_key[keys[k]] = k
	end
	local function holds(i, s)
		if what == "ready" then return runtime.ready_now(i) end
		if what == "started" then return s == "running" or s == "ready" end
		return s == what
	end
	local met, n = {}, 0 -- met[k]: true, or the exit event of instance k
	if what ~= "exit" then
		for k, i in ipairs(list) do
			if holds(i, i.state) then met[k] = true n = n + 1 end
		end
	end
	while n < #list do
		local waiting = {}
		for k = 1, #list do
			if not met[k] or DURABLE[what] then waiting[#waiting + 1] = keys[k] end
		end
		local key, v = reactions.wait_any(waiting, left(), "hum.wait")
		if not key then return nil, v end
		local k = by_key[key]
		-- retired while waited for: what is waited for can never happen
		if list[k].removed then return nil, list[k].name .. " was removed" end
		local now
		if what == "exit" then now = v
		elseif DURABLE[what] then now = holds(list[k], list[k].state) or nil
		else now = met[k] or (v == what) or nil
		end
		if now and not met[k] then n = n + 1 elseif met[k] and not now then n = n - 1 end
		met[k] = now
	end
	if what == "exit" then return #list == 1 and met[1] or met end
	return true
end

-- hum.exec(cmd [, { cwd, env, input, timeout }]) -> { code, signal, stdout, stderr }
function hum.exec(cmd, opts)
	if type(cmd) ~= "table" and type(cmd) ~= "string" then error("hum.exec: expected argv or a string", 2) end
	opts = opts or {}
	if type(opts) ~= "table" then error("hum.exec: options must be a table", 2) end
	if opts.timeout ~= nil then limits.need(opts.timeout, "hum.exec timeout", 2, "hum.exec: the timeout") end
	local co = reactions.current("hum.exec")
	local id, err = probes.exec(cmd, { cwd = opts.cwd, env = opts.env, input = opts.input, timeout = opts.timeout },
		function(code, sig, out, errout, e)
			reactions.resume(co, { code = code >= 0 and code or nil, signal = sig ~= 0 and raw.signame(sig) or nil,
				stdout = out, stderr = errout, error = e })
		end)
	if not id then return nil, err end
	return reactions.yield()
end

-- hum.limits { name = value, ... }: bounds a config may change.  One entry
-- per limit: a function that applies the value or returns nil, message.
hum.limit_setters = {
	-- bytes, or a size such as "512M" (lua/bind/memory.h)
	lua_memory = raw.memory_limit,
}
function hum.limits(t)
	if type(t) ~= "table" then error("hum.limits: expected a table { lua_memory = ... }", 2) end
	for k, v in pairs(t) do
		local set = hum.limit_setters[k]
		if not set then
			local known = {}
			for name in pairs(hum.limit_setters) do known[#known + 1] = name end
			table.sort(known)
			error(("hum.limits: unknown limit %q (known: %s)"):format(tostring(k), table.concat(known, ", ")), 2)
		end
		local ok, err = set(v)
		if not ok then error(("hum.limits: %s: %s"):format(k, err), 2) end
	end
end

-- Messages from scripts appear in hum's output, marked as hum's own.
hum.log = {}
for _, level in ipairs { "info", "warn", "error" } do
	hum.log[level] = function(...)
		local parts = {}
		for k = 1, select("#", ...) do parts[k] = tostring((select(k, ...))) end
		raw.log((level == "info" and "" or level .. ": ") .. table.concat(parts, " "))
	end
end

return hum
