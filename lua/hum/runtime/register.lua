-- hum.runtime.register — turning a generation's definitions into processes
-- registered with the supervisor: each replica's name, environment and
-- spec (the table raw.add takes, and raw.spec_equal compares: what live
-- reload asks before it keeps a running process), and which instances'
-- output lines become Lua events.  Methods of the runtime object.
local raw = require "hum.raw"
local util = require "hum.util"

local R = {}

-- hum's environment (unless env_clear) with hum.env and env files applied:
-- the same for every process, so made once per generation (10,000
-- processes must not read and merge the environment 10,000 times).
local function base_env(rt, clear)
	local key = clear and "clear" or "inherit"
	if not rt.base_envs[key] then
		local env = clear and {} or raw.environ()
		for _, kv in ipairs(rt.defs.env) do
			env[kv[1]] = kv[2] ~= false and tostring(kv[2]) or nil
		end
		rt.base_envs[key] = env
	end
	return rt.base_envs[key]
end

-- The environment of replica `replica` of p, as a sorted KEY=VALUE list.
local function build_env(rt, p, replica, name, cwd)
	local env = {}
	for k, v in pairs(base_env(rt, p.env_clear)) do env[k] = v end
	-- the inherited PWD names where hum was started (or not even that:
	-- env -C keeps the caller's); the child gets its own directory
	if not p.env_clear then env.PWD = util.realdir(cwd) end
	for k, v in pairs(p.env) do
		if v == false then env[k] = nil else env[k] = tostring(v) end
	end
	env.HUM_PROCESS = name
	if p.scale > 1 then env.HUM_REPLICA = tostring(replica) end
	local list = {}
	for k, v in pairs(env) do list[#list + 1] = k .. "=" .. v end
	table.sort(list)
	return list
end

local RESTART = { no = raw.RESTART_NO, ["on-failure"] = raw.RESTART_ON_FAILURE, always = raw.RESTART_ALWAYS }

-- The name of replica r of definition p, and its replica base ("" when p is
-- not scaled): what the process is registered with, and what selectors
-- match (core/state/select.h).
function R.instance_name(p, r)
	if p.scale > 1 then return p.name .. "." .. r, p.name end
	return p.name, ""
end
local instance_name = R.instance_name

-- The spec of replica r of p (raw.add's table), and its name.
function R.spec_of(rt, p, r)
	local name, base = instance_name(p, r)
	local cwd = util.resolve(rt.base_dir, p.cwd or ".")
	local spec = {
		kind = p.kind == "task" and raw.TASK or raw.SERVICE,
		cwd = cwd,
		env = build_env(rt, p, r, name, cwd),
		stop_signal = raw.signum(p.stop_spec.signal), grace = p.stop_spec.grace,
		restart_policy = RESTART[p.restart_spec.policy], restart_max = p.restart_spec.max,
		backoff_initial = p.restart_spec.initial, backoff_cap = p.restart_spec.cap,
		backoff_reset = p.restart_spec.reset,
		groups = table.concat(p.groups, ","),
		base = base,
		ready_probe = p.ready_probe ~= nil, -- its "ready" is worth a line
	}
	if type(p.cmd) == "table" then
		spec.argv = {}
		for k, a in ipairs(p.cmd) do spec.argv[k] = tostring(a) end
	else
		spec.shell = p.cmd
	end
	return spec, name
end

-- Definition -> its instances in this generation.  The runtime never writes
-- into definitions (they are the user's config, and a later generation may
-- compare them); a one-instance view (hum.get "web.2") carries its own
-- `instances`.
function R.instances(rt, p)
	if p.instances then return R.live(p.instances) end
	return rt.of_def[p] or {}
end

-- A one-instance view outlives its instance's removal: what it lists
-- without the removed.
function R.live(list)
	for _, i in ipairs(list) do
		if i.removed then
			local out = {}
			for _, j in ipairs(list) do
				if not j.removed then out[#out + 1] = j end
			end
			return out
		end
	end
	return list
end

-- The reason a process with autostart = false shows until something starts
-- it (README, "Process states").
function R.manual_reason(p)
	return ("manual (autostart = false): start it with hum start %s"):format(p.name)
end

-- Registers every definition of the generation with the supervisor (in
-- definition order, replicas in order), then links the dependency graph.
-- Raises "<file:line>: cannot register NAME: <why>" on a refused spec.
function R.register_all(rt)
	rt.base_envs = {}
	for _, p in ipairs(rt.defs.list) do
		local list = {}
		rt.of_def[p] = list
		for r = 1, p.scale do
			local spec, name = rt:spec_of(p, r)
			local id, err = raw.add(name, spec)
			if not id then error(("%s: cannot register %q: %s"):format(p.where, name, err), 0) end
			-- never started by itself: say so, rather than C's "not started"
			if not p.autostart then raw.set_pending(id, R.manual_reason(p)) end
			local i = { id = id, name = name, def = p, replica = r, state = "pending", cwd = spec.cwd,
				env = spec.env, wanted = false, rdeps = {}, idx = #rt.inst_list + 1, rt = rt }
			rt.inst[id], rt.by_name[name] = i, i
			rt.inst_list[#rt.inst_list + 1] = i
			list[#list + 1] = i
		end
		rt:watch_lines(p)
	end
	-- every instance exists: link the graph and close the gates of those
	-- that wait for something (everything is pending: nothing can be
	-- "never" yet, so no propagation is needed)
	for _, i in ipairs(rt.inst_list) do rt:link(i) end
	for _, i in ipairs(rt.inst_list) do
		if i.deps[1] then rt:refresh(i) else i.gate = true end
	end
end

-- Whether an instance's output lines become "line" events: only while
-- something listens (a live on("line") reaction, or a line probe waiting
-- for its match), so a chatty process costs Lua nothing otherwise.  C arms
-- the probe at each start attempt (before the run can print); `armed`
-- false disarms it once it matched or stopped.
function R.line_interest(rt, i, armed)
	if i.removing or i.removed then return end
	local reacts = false
	for _, r in ipairs(i.def.reactions.line or {}) do
		if not r.removed then reacts = true; break end
	end
	local pr = i.def.ready_probe
	raw.watch_lines(i.id, reacts, pr ~= nil and pr.__probe == "line", armed)
end

-- A definition's line reactions changed: recompute for its instances.
function R.watch_lines(rt, p)
	for _, i in ipairs(rt:instances(p)) do rt:line_interest(i) end
end

return R
