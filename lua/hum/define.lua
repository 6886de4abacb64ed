-- hum.define — the definition DSL: hum.service, hum.task, hum.group, probes.
--
-- Definitions are plain Lua tables validated when they are written, so a
-- mistake is reported as `file:line: message` at the line of the definition,
-- before anything starts.  Nothing here talks to the supervisor: the runtime
-- registers every definition with C once the whole file has loaded.

local util = require "hum.util"
local limits = require "hum.limits"
local envfile = require "hum.envfile"

-- a number checked against its rule (hum.limits), raised like fail(level)
local number = limits.need

local M = {}

local defs = {
	list = {},     -- processes in definition order
	byname = {},
	names = {},    -- name -> { owner =, r = }: processes, replicas, groups
	groups = {},   -- name -> { name=, members = { proc... }, where = }
	group_list = {},
	env = {},      -- hum.env{} and hum.env_file additions, in order
	hooks = {},    -- hum.on(event) reactions: event -> { reaction... }
}
M.defs = defs

local Proc = {}
Proc.__index = Proc
M.Proc = Proc

function Proc:__tostring() return ("hum.%s(%q)"):format(self.kind, self.name) end

-- The caller's "file:line" `level` frames up (1 = the function calling where()).
local function where(level)
	local info = debug.getinfo(level + 1, "Sl")
	if not info or info.currentline < 0 then return "?" end
	return ("%s:%d"):format(info.short_src, info.currentline)
end
M.where = where

local function fail(level, fmt, ...)
	error(fmt:format(...), level + 1)
end

-- Names.  Every name a selector can mean — a process, each replica of a
-- scaled definition (web.1 … web.N), a group — belongs to one definition,
-- so that `hum stop web.2` never means two things and `hum up` never meets
-- a name it cannot register.  names[name] = { owner = process or group,
-- r = replica number }; messages are made only when a claim fails.
local function describe(e, as_subject)
	local o = e.owner
	if o.members then return (as_subject and "hum.group %q" or "group %q"):format(o.name) end
	if e.r and as_subject then return ("hum.%s %q (scale = %d), replica %d"):format(o.kind, o.name, o.scale, e.r) end
	if e.r then return ("replica %d of %q (scale = %d)"):format(e.r, o.name, o.scale) end
	return (as_subject and "hum.%s %q" or "%s %q"):format(o.kind, o.name)
end

local function claim(name, e, level)
	local prev = defs.names[name]
	if prev then
		if not (prev.r or e.r or prev.owner.members or e.owner.members) then
			fail(level + 1, "duplicate name %q (first defined at %s)", name, prev.owner.where)
		end
		fail(level + 1, "%s: name %q is taken by %s, defined at %s", describe(e, true), name, describe(prev),
			prev.owner.where)
	end
	defs.names[name] = e
end

local CONDITIONS = { started = true, ready = true, succeeded = true, completed = true }
M.CONDITIONS = CONDITIONS

local FIELDS = {
	cmd = "string|table", cwd = "string", env = "table", stop = "table",
	restart = "string|table", ready = "table", after = "table|string", desc = "string",
	scale = "number", group = "string|table", groups = "table", liveness = "table",
	env_clear = "boolean", autostart = "boolean",
}

local function typeok(v, spec)
	local t = type(v)
	for alt in spec:gmatch("[^|]+") do
		if alt == t then return true end
	end
	return false
end

local function check_restart(r, level)
	if type(r) == "string" then r = { policy = r } end
	local out = { policy = r.policy or "no" }
	if out.policy ~= "no" and out.policy ~= "on-failure" and out.policy ~= "always" then
		fail(level, "restart.policy must be \"no\", \"on-failure\" or \"always\", not %q", tostring(out.policy))
	end
	for k in pairs(r) do
		if k ~= "policy" and k ~= "max" and k ~= "backoff" and k ~= "reset" then
			fail(level, "unknown field restart.%s", tostring(k))
		end
	end
	out.max = number(r.max or -1, "restart.max", level)
	local b = r.backoff
	if b == nil then
		out.initial, out.cap = 0.5, 30
	elseif type(b) == "number" then
		out.initial = number(b, "restart.backoff", level)
		out.cap = math.max(b, 30)
	elseif type(b) == "table" then
		out.initial = number(b.initial or b[1] or 0.5, "restart.backoff", level, "restart.backoff initial")
		out.cap = number(b.cap or b[2] or math.max(out.initial, 30), "restart.backoff", level, "restart.backoff cap")
	else
		fail(level, "restart.backoff must be a number or { initial, cap }")
	end
	if out.cap < out.initial then fail(level, "restart.backoff needs initial <= cap") end
	out.reset = number(r.reset or 10, "restart.reset", level)
	return out
end

local function check_stop(s, level)
	local out = { signal = "TERM", grace = 5 }
	for k, v in pairs(s) do
		if k == "signal" then
			if (type(v) ~= "string" and type(v) ~= "number") or not util.signum(v) then
				fail(level, "stop.signal: unknown signal %q", tostring(v))
			end
			out.signal = v
		elseif k == "grace" then
			out.grace = number(v, "stop.grace", level)
		else
			fail(level, "unknown field stop.%s", tostring(k))
		end
	end
	return out
end

local function check_after(a, level)
	local out = {}
	if type(a) == "string" then a = { a } end
	for k, v in pairs(a) do
		local name, cond
		if type(k) == "number" then
			name, cond = v, nil -- default chosen by the dependency's kind at run time
			if getmetatable(v) == Proc then name = v.name end
		else
			name, cond = k, v
		end
		if type(name) ~= "string" then fail(level, "after: dependency names must be strings") end
		if cond ~= nil and not CONDITIONS[cond] then
			fail(level, "after.%s: condition must be started, ready, succeeded or completed, not %q", name, tostring(cond))
		end
		out[#out + 1] = { name = name, cond = cond }
	end
	table.sort(out, function(x, y) return x.name < y.name end)
	return out
end

local function check_env(e, level, what)
	for k, v in pairs(e) do
		if type(k) ~= "string" then fail(level, "%s: keys must be strings", what) end
		local t = type(v)
		if t ~= "string" and t ~= "number" and t ~= "boolean" then
			fail(level, "%s.%s must be a string, a number or false (to unset)", what, k)
		end
		if v == true then fail(level, "%s.%s: true is not a value (use a string, or false to unset)", what, k) end
	end
	return e
end

local function define(kind, name, spec, level)
	level = level + 1
	if type(name) ~= "string" or not name:match("^[%w_%-%.:]+$") then
		fail(level, "hum.%s: name must be a non-empty string of letters, digits, _ - . :", kind)
	end
	if type(spec) ~= "table" then fail(level, "hum.%s %q: expected a table of fields", kind, name) end
	for k, v in pairs(spec) do
		local want = FIELDS[k]
		if not want then fail(level, "hum.%s %q: unknown field %q", kind, name, tostring(k)) end
		if not typeok(v, want) then
			fail(level, "hum.%s %q: field %s must be a %s, not a %s", kind, name, k, want:gsub("|", " or "), type(v))
		end
	end
	if spec.cmd == nil then fail(level, "hum.%s %q: cmd is required", kind, name) end
	if type(spec.cmd) == "table" then
		if #spec.cmd == 0 then fail(level, "hum.%s %q: cmd table is empty", kind, name) end
		for i, a in ipairs(spec.cmd) do
			if type(a) ~= "string" and type(a) ~= "number" then
				fail(level, "hum.%s %q: cmd[%d] must be a string", kind, name, i)
			end
		end
	elseif spec.cmd == "" then
		fail(level, "hum.%s %q: cmd is empty", kind, name)
	end
	local p = setmetatable({
		name = name, kind = kind, where = where(level), spec = spec,
		cmd = spec.cmd, cwd = spec.cwd, desc = spec.desc,
		env = check_env(spec.env or {}, level + 1, "env"),
		env_clear = spec.env_clear or false,
		stop_spec = check_stop(spec.stop or {}, level + 1),
		restart_spec = check_restart(spec.restart or "no", level + 1),
		after = check_after(spec.after or {}, level + 1),
		ready_probe = spec.ready, liveness = spec.liveness,
		scale = number(spec.scale or 1, "scale", level, ("hum.%s %q: scale"):format(kind, name)),
		autostart = spec.autostart ~= false,
		groups = {}, reactions = {},
	}, Proc)
	if spec.ready ~= nil and not spec.ready.__probe then
		fail(level, "hum.%s %q: ready must be a probe (hum.ready.line/tcp/exec/http)", kind, name)
	end
	if spec.liveness ~= nil and not spec.liveness.__probe then
		fail(level, "hum.%s %q: liveness must be a probe (hum.ready.tcp/exec/http)", kind, name)
	end
	claim(name, { owner = p }, level)
	if p.scale > 1 then
		for r = 1, p.scale do claim(name .. "." .. r, { owner = p, r = r }, level) end
	end
	defs.list[#defs.list + 1] = p
	defs.byname[name] = p
	local g = spec.group or spec.groups
	if g then
		for _, gname in ipairs(type(g) == "table" and g or { g }) do
			M.group_add(gname, p, level)
		end
	end
	return p
end

-- The group `gname`, made at the caller's caller's line (`level`) if new.
local function group_of(gname, level)
	local g = defs.groups[gname]
	if not g then
		g = { name = gname, members = {}, where = where(level + 1) }
		claim(gname, { owner = g }, level + 1)
		defs.groups[gname] = g
		defs.group_list[#defs.group_list + 1] = g
	end
	return g
end

function M.group_add(gname, p, level)
	local g = group_of(gname, level + 1)
	for _, m in ipairs(g.members) do
		if m == p then return g end
	end
	g.members[#g.members + 1] = p
	p.groups[#p.groups + 1] = gname
	return g
end

-- hum.service "name" { ... } and hum.service("name", { ... })
local function maker(kind)
	-- no tail calls: error levels count stack frames, and a tail call drops one
	return function(name, spec)
		if spec ~= nil then
			local p = define(kind, name, spec, 2)
			return p
		end
		if type(name) ~= "string" then fail(2, "hum.%s: expected a name", kind) end
		return function(s)
			local p = define(kind, name, s, 2)
			return p
		end
	end
end
M.service = maker("service")
M.task = maker("task")

-- hum.group "name" { p1, p2, "name3" }: names may refer to later definitions.
function M.group(name, members)
	local function make(list)
		if type(name) ~= "string" or name == "" then fail(3, "hum.group: expected a name") end
		if type(list) ~= "table" then fail(3, "hum.group %q: expected a list of processes", name) end
		local g = group_of(name, 3)
		g.pending = g.pending or {}
		for i, m in ipairs(list) do
			if getmetatable(m) == Proc then
				M.group_add(name, m, 3)
			elseif type(m) == "string" then
				g.pending[#g.pending + 1] = { name = m, where = where(3) }
			else
				fail(3, "hum.group %q: member %d must be a process or a name", name, i)
			end
		end
		return g
	end
	if members ~= nil then
		local g = make(members)
		return g
	end
	return function(list)
		local g = make(list)
		return g
	end
end

-- Probes ------------------------------------------------------------------
local function probe(kind, t)
	t.__probe = kind
	t.interval = t.interval or 0.5
	t.timeout = t.timeout or 60
	-- retries stays nil unless given: readiness then retries until the
	-- timeout, liveness allows 3 consecutive failures (hum.probes)
	return t
end

local function probe_opts(t, opts, level)
	if opts == nil then return t end
	if type(opts) ~= "table" then fail(level + 1, "probe options must be a table") end
	for k, v in pairs(opts) do
		if k ~= "interval" and k ~= "timeout" and k ~= "retries" and k ~= "period" then
			fail(level + 1, "unknown probe option %q", tostring(k))
		end
		t[k] = number(v, "probe." .. k, level + 1, "probe option " .. k)
	end
	return t
end

M.ready = {}
function M.ready.line(pattern, opts)
	if type(pattern) ~= "string" then fail(2, "hum.ready.line: expected a Lua pattern") end
	local ok, err = pcall(string.find, "", pattern)
	if not ok then fail(2, "hum.ready.line: bad pattern: %s", tostring(err):gsub("^.-:%d+: ", "")) end
	local p = probe_opts(probe("line", { pattern = pattern }), opts, 2)
	return p
end
-- The default host is `localhost`: both ::1 and 127.0.0.1 are tried, so a
-- server bound to either loopback passes.
function M.ready.tcp(port, host, opts)
	if type(host) == "table" then host, opts = nil, host end
	number(port, "port", 2, "hum.ready.tcp: port")
	if host ~= nil and (type(host) ~= "string" or host == "") then fail(2, "hum.ready.tcp: host must be a name or an address") end
	local p = probe_opts(probe("tcp", { port = port, host = host or "localhost" }), opts, 2)
	return p
end
function M.ready.exec(cmd, opts)
	if type(cmd) ~= "table" and type(cmd) ~= "string" then fail(2, "hum.ready.exec: expected argv or a string") end
	local p = probe_opts(probe("exec", { cmd = cmd }), opts, 2)
	return p
end
function M.ready.http(url, opts)
	if type(url) ~= "string" then fail(2, "hum.ready.http: expected a URL") end
	local host, port, path = util.parse_url(url)
	if not host then fail(2, "hum.ready.http: %s", port) end
	local p = probe_opts(probe("http", { url = url, host = host, port = port, path = path }), opts, 2)
	return p
end

-- Environment --------------------------------------------------------------
function M.env(t)
	if type(t) ~= "table" then fail(2, "hum.env: expected a table") end
	check_env(t, 3, "hum.env")
	for k, v in pairs(t) do defs.env[#defs.env + 1] = { k, v } end
end

-- A name an env file uses but does not define: the latest hum.env or
-- earlier env file value (false: unset), else hum's own environment.
local function env_lookup(k)
	for j = #defs.env, 1, -1 do
		local kv = defs.env[j]
		if kv[1] == k then
			if kv[2] == false then return nil end
			return tostring(kv[2])
		end
	end
	return os.getenv(k)
end

function M.env_file(...)
	for i = 1, select("#", ...) do
		local path = select(i, ...)
		if type(path) ~= "string" then fail(2, "hum.env_file: expected file names") end
		local vars, err = envfile.read(util.resolve(M.base_dir or ".", path), env_lookup)
		if not vars then fail(2, "hum.env_file: %s", err) end
		for _, kv in ipairs(vars) do defs.env[#defs.env + 1] = kv end
	end
end

-- Checks that need the whole file: dependency names, group members, cycles.
function M.finish()
	for _, g in ipairs(defs.group_list) do
		for _, m in ipairs(g.pending or {}) do
			local p = defs.byname[m.name]
			if not p then error(("%s: group %q: unknown process %q"):format(m.where, g.name, m.name), 0) end
			M.group_add(g.name, p, 1)
		end
		g.pending = nil
	end
	for _, p in ipairs(defs.list) do
		for _, d in ipairs(p.after) do
			local dp = defs.byname[d.name]
			if not dp then
				error(("%s: %q depends on unknown process %q"):format(p.where, p.name, d.name), 0)
			end
			if dp == p then error(("%s: %q depends on itself"):format(p.where, p.name), 0) end
			d.proc = dp
			d.cond = d.cond or (dp.kind == "task" and "succeeded" or "ready")
			if dp.kind == "service" and d.cond == "succeeded" and dp.restart_spec.policy == "always" then
				error(("%s: %q waits for %q to succeed, but it restarts always"):format(p.where, p.name, d.name), 0)
			end
		end
	end
	-- cycle detection: depth-first with colours, reporting the path; an
	-- explicit stack (frames of process and next edge), so an `after`
	-- chain of any length is checked in time and memory linear in its size
	local colour = {}
	for _, root in ipairs(defs.list) do
		if not colour[root] then
			colour[root] = "grey"
			local stack = { { p = root, k = 1 } }
			while #stack > 0 do
				local top = stack[#stack]
				local d = top.p.after[top.k]
				if not d then
					colour[top.p] = "black"
					stack[#stack] = nil
				else
					top.k = top.k + 1
					if colour[d.proc] == "grey" then
						local i = 1
						while stack[i].p ~= d.proc do i = i + 1 end
						local path = {}
						for j = i, #stack do path[#path + 1] = stack[j].p.name end
						path[#path + 1] = d.proc.name
						error(("%s: dependency cycle: %s"):format(d.proc.where, table.concat(path, " -> ")), 0)
					elseif not colour[d.proc] then
						colour[d.proc] = "grey"
						stack[#stack + 1] = { p = d.proc, k = 1 }
					end
				end
			end
		end
	end
end

function M.reset()
	defs.list, defs.byname, defs.names, defs.groups, defs.group_list, defs.env, defs.hooks = {}, {}, {}, {}, {}, {}, {}
end

return M
