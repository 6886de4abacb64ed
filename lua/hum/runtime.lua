-- hum.runtime — the running environment: instances of the definitions,
-- dependency gating, readiness, reactions on events, ordered shutdown.
--
-- C publishes every state change; the dispatcher (installed with
-- raw.set_dispatch) receives them as events and this module decides what
-- follows: which pending process may start, when a process counts as ready,
-- which reactions run, when hum is done.  Lua keeps ids, C keeps processes.
local raw = require "hum.raw"
local define = require "hum.define"
local reactions = require "hum.reactions"
local util = require "hum.util"

local M = {}
local defs = define.defs

local inst = {}        -- C id -> instance
local inst_list = {}   -- in registration order
local by_name = {}     -- instance name -> instance
M.inst, M.inst_list, M.by_name = inst, inst_list, by_name

local shutting = false
local exit_code = 0
local all_ready_fired = false
local probes -- hum.probes, loaded lazily (it needs this module)
M.mode = "up"  -- or "run"

-- Listeners ---------------------------------------------------------------------
-- What other modules hook into, as lists called in the order they were
-- added (M.listen returns a handle with :off()); nothing is a single slot
-- that a second user would overwrite:
--   idle(…)          nothing can make progress; a listener that returns
--                    true has decided what happens (keep running, shut
--                    down); when none does, hum finishes with the outcome
--   state(i, new, old)  after each state event of an instance
--   command(id, req) a control-socket request; true when handled
--   teardown()       once the loop has returned (M.run), newest first: the
--                    API thread must stop before the supervisor is freed
local listeners = { idle = {}, state = {}, command = {}, teardown = {} }
local Listener = {}
Listener.__index = Listener
function Listener:off()
	local list = listeners[self.kind]
	for k, l in ipairs(list) do
		if l == self then table.remove(list, k) return true end
	end
	return false
end

function M.listen(kind, fn)
	local list = assert(listeners[kind], "unknown listener kind")
	local l = setmetatable({ kind = kind, fn = fn }, Listener)
	list[#list + 1] = l
	return l
end

-- Calls kind's listeners in order until one returns true; returns it.
local function claim(kind, ...)
	for _, l in ipairs({ unpack(listeners[kind]) }) do
		if l.fn(...) then return true end
	end
	return false
end

local function notify(kind, ...)
	for _, l in ipairs({ unpack(listeners[kind]) }) do l.fn(...) end
end

-- Runs the loop until hum finishes, then the teardown listeners (newest
-- first, each protected: one failing does not skip the others).  Returns
-- the exit code.
function M.run()
	local ok, code = pcall(raw.run)
	local list = listeners.teardown
	for k = #list, 1, -1 do
		local okt, err = pcall(list[k].fn)
		if not okt then io.stderr:write("hum: teardown: ", tostring(err), "\n") end
	end
	if not ok then error(code, 0) end
	return code
end

local ACTIVE = { starting = true, running = true, ready = true, stopping = true, backoff = true }
local FINAL = { stopped = true, succeeded = true, failed = true }
M.ACTIVE, M.FINAL = ACTIVE, FINAL

local function log(fmt, ...) raw.log(fmt:format(...)) end

-- Registration ---------------------------------------------------------------
local function build_env(p, replica, name)
	local env = {}
	if not p.env_clear then env = raw.environ() end
	for _, kv in ipairs(defs.env) do
		env[kv[1]] = kv[2] ~= false and tostring(kv[2]) or nil
	end
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
local function instance_name(p, r)
	if p.scale > 1 then return p.name .. "." .. r, p.name end
	return p.name, ""
end

-- Definition -> its instances.  The runtime never writes into definitions
-- (they are the user's config, and a later generation may compare them);
-- a one-instance view (hum.get "web.2") carries its own `instances`.
local of_def = setmetatable({}, { __mode = "k" })
function M.instances(p) return p.instances or of_def[p] or {} end

function M.register_all(base_dir)
	for _, p in ipairs(defs.list) do
		local list = {}
		of_def[p] = list
		for r = 1, p.scale do
			local name, base = instance_name(p, r)
			local cwd = util.resolve(base_dir, p.cwd or ".")
			local spec = {
				kind = p.kind == "task" and raw.TASK or raw.SERVICE,
				cwd = cwd,
				env = build_env(p, r, name),
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
				for i, a in ipairs(p.cmd) do spec.argv[i] = tostring(a) end
			else
				spec.shell = p.cmd
			end
			local id, err = raw.add(name, spec)
			if not id then error(("%s: cannot register %q: %s"):format(p.where, name, err), 0) end
			local i = { id = id, name = name, def = p, replica = r, state = "pending", cwd = cwd,
				wanted = false, ready = false, started = false, idx = #inst_list + 1 }
			inst[id], by_name[name] = i, i
			inst_list[#inst_list + 1] = i
			list[#list + 1] = i
		end
		M.watch_lines(p)
	end
end

-- Starts the supervisor and registers every definition; nothing runs yet.
-- The foreground printer's name column fits the longest name from the start.
function M.boot(base_dir)
	raw.init()
	local width = 0
	for _, p in ipairs(defs.list) do
		width = math.max(width, #p.name + (p.scale > 1 and #tostring(p.scale) + 1 or 0))
	end
	raw.output(1, width)
	require("hum.messages").attach(M)
	raw.set_dispatch(M.dispatch)
	M.register_all(base_dir)
	M.started = true
	reactions.start()
end

-- Whether an instance's output lines become "line" events: only while
-- something listens (a live on("line") reaction, or a line probe waiting
-- for its match), so a chatty process costs Lua nothing otherwise.  C arms
-- the probe at each start attempt (before the run can print); `armed`
-- false disarms it once it matched or stopped.
function M.line_interest(i, armed)
	local reacts = false
	for _, r in ipairs(i.def.reactions.line or {}) do
		if not r.removed then reacts = true; break end
	end
	local pr = i.def.ready_probe
	raw.watch_lines(i.id, reacts, pr ~= nil and pr.__probe == "line", armed)
end

-- A definition's line reactions changed: recompute for its instances.
function M.watch_lines(p)
	for _, i in ipairs(M.instances(p)) do M.line_interest(i) end
end

-- Dependencies ----------------------------------------------------------------
-- true: satisfied; false, why: can never be satisfied in this state; nil, why: not yet.
local function dep_status(d)
	local insts = M.instances(d.proc)
	for _, di in ipairs(insts) do
		local s, c = di.state, d.cond
		local ok
		if c == "started" then ok = di.started and s ~= "pending"
		elseif c == "ready" then ok = di.ready
		elseif c == "succeeded" then ok = s == "succeeded"
		elseif c == "completed" then ok = s == "succeeded" or (s == "failed" and di.started)
		end
		if not ok then
			if c == "ready" and di.probe_failed then return false, ("%s never became ready"):format(di.name) end
			if s == "stopped" and di.started then return false, ("%s stopped"):format(di.name) end
			if s == "failed" and (c ~= "completed" or not di.started) then
				return false, ("%s failed"):format(di.name)
			end
			if s == "succeeded" and c == "ready" and not di.ready then
				return false, ("%s exited before it was ready"):format(di.name)
			end
			if s == "succeeded" and c == "started" then ok = true end
			if not ok and s == "pending" and not di.started then
				-- a dependency that can never start blocks its dependents too
				local dok, dwhy = M.deps_status(di)
				if dok == false then return false, ("%s cannot start: %s"):format(di.name, dwhy) end
			end
			if not ok then return nil, ("waiting for %s (%s)"):format(di.name, c) end
		end
	end
	return true
end

local function deps_status(i)
	for _, d in ipairs(i.def.after) do
		local ok, why = dep_status(d)
		if not ok then return ok, why end
	end
	return true
end
M.deps_status = deps_status

-- Instances evaluate() must look at: a superset of the wanted ones that are
-- pending (or stopped and asked to start again) and not yet starting.  Added
-- to wherever one of those conditions may have become true (want, a state
-- change to pending/stopped, start_instance); evaluate() drops the rest.  A
-- state change then costs work in proportion to what waits, not to every
-- process (a 1000-process burst made evaluate() the main cost).
local cands = {}

-- Marks i and, transitively, its dependencies as wanted.
function M.want(i)
	if i.wanted then return end
	i.wanted = true
	cands[i] = true
	for _, d in ipairs(i.def.after) do
		for _, di in ipairs(M.instances(d.proc)) do M.want(di) end
	end
end

local jobs_running = 0
M.jobs = nil -- maximum concurrently running tasks (hum run); nil = no limit

-- Starts every wanted pending instance whose dependencies are satisfied.
local function by_idx(a, b) return a.idx < b.idx end

function M.evaluate()
	if shutting or next(cands) == nil then return end
	local list = {}
	for i in pairs(cands) do
		if i.wanted and (i.state == "pending" or (i.state == "stopped" and i.restart_wanted)) and not i.starting then
			list[#list + 1] = i
		else
			cands[i] = nil
		end
	end
	table.sort(list, by_idx) -- definition order, as the config reads
	local changed = true
	while changed do
		changed = false
		for _, i in ipairs(list) do
			if i.wanted and (i.state == "pending" or (i.state == "stopped" and i.restart_wanted)) and not i.starting then
				local ok, why = deps_status(i)
				if ok then
					if not (M.jobs and i.def.kind == "task" and jobs_running >= M.jobs) then
						i.starting = true
						cands[i] = nil
						i.restart_wanted = nil
						if i.def.kind == "task" and not i.job then
							i.job = true
							jobs_running = jobs_running + 1
						end
						-- a spawn error is published as `failed` (and logged
						-- by the supervisor with its reason): nothing to add
						raw.start(i.id)
						changed = true
					elseif i.reason ~= "waiting for a job slot" then
						i.reason = "waiting for a job slot"
						raw.set_pending(i.id, i.reason)
					end
				elseif why ~= i.reason then
					i.reason = why
					if ok == false then i.blocked = true end
					raw.set_pending(i.id, why)
				end
			end
		end
	end
end

-- Events ------------------------------------------------------------------------
-- Runs every reaction of a list.  A reaction may :off() itself or another
-- one while the list is walked (removing from it): walk a copy, and skip
-- reactions switched off since the walk began.
local function run_list(list, ...)
	if not list or not list[1] then return end
	local copy = { unpack(list) }
	for _, r in ipairs(copy) do
		if not r.removed then reactions.run(r, ...) end
	end
end
M.run_list = run_list

local function fire(i, event, ev, ...)
	run_list(i.def.reactions[event], ev, ...)
	-- hum.on("ready") means "everything is ready" (see on_state), not one process
	if event ~= "ready" then run_list(defs.hooks[event], ev, ...) end
end
M.fire = fire

local function all_ready()
	for _, i in ipairs(inst_list) do
		if i.wanted then
			if i.def.kind == "task" then
				if i.state ~= "succeeded" then return false end
			elseif not i.ready then
				return false
			end
		end
	end
	return true
end

local function anything_active()
	for _, i in ipairs(inst_list) do
		if ACTIVE[i.state] or i.starting then return true end
	end
	if raw.active() > 0 then
		-- only pipes held by leftovers: no state event will follow, so ask
		-- C for an "idle" event when the last one closes
		raw.notify_idle()
		return true
	end
	return false
end

-- Can anything still happen without a user's command?  A reaction that is
-- suspended (sleeping, waiting, exec'ing) may still start or stop something.
local function progress_possible()
	if anything_active() or reactions.live > 0 then return true end
	for _, i in ipairs(inst_list) do
		if i.wanted and i.state == "pending" then
			local ok = deps_status(i)
			if ok ~= false then return true end
		end
	end
	return false
end

local function outcome_code()
	for _, i in ipairs(inst_list) do
		if i.wanted then
			if i.state == "failed" then return 1 end
			if i.def.kind == "task" and i.state ~= "succeeded" then return 1 end
		end
	end
	return 0
end
M.outcome_code = outcome_code

local function check_done()
	if shutting then
		-- ordered shutdown: stop whatever has no running dependents left
		M.shutdown_step()
		return
	end
	if not progress_possible() then
		if claim("idle") then return end
		M.finish(outcome_code())
	end
end

-- The last live reaction may finish in the middle of a dispatch (the first
-- of several reactions to one event): judging "done" then would quit before
-- the others run.  Inside a dispatch, judge once it returns.
local dispatching, settled = false, false
reactions.on_settled = function()
	if dispatching then settled = true else check_done() end
end

local function on_state(ev)
	local id, new, old, reason, code, sig = ev.id, ev.state, ev.old, ev.reason, ev.code, ev.signal
	local i = inst[id]
	if not i then return end
	i.state, i.reason = new, reason
	i.exit_code, i.signal = code, sig
	if new ~= "pending" then i.starting = false end
	if new == "pending" or new == "stopped" then cands[i] = true end
	-- a task holds a job slot from its start until it leaves the active states
	if i.job and not ACTIVE[new] and new ~= "pending" then
		i.job = false
		jobs_running = jobs_running - 1
	end
	if new == "running" and ev.began then
		i.started = true
		i.ready = false
		if probes == nil then probes = require "hum.probes" end
		if i.def.ready_probe then
			probes.start_ready(i)
		else
			raw.set_ready(id)
		end
		fire(i, "start", { name = i.name, pid = ev.pid, restarts = ev.restarts, time = ev.time })
	elseif new == "ready" and old ~= "ready" then
		i.ready = true
		if probes == nil then probes = require "hum.probes" end
		if i.def.liveness then probes.start_liveness(i) end
		fire(i, "ready", { name = i.name, captures = i.captures or {}, time = ev.time })
		reactions.wake("ready:" .. id, true)
	end
	if not ACTIVE[new] and new ~= "pending" then i.ready = false end
	-- "exit" also reports a spawn error (from pending, or from backoff when
	-- a restart could not spawn): the process failed without running
	local spawn_error = new == "failed" and ev.spawn_error
	if ev.ended and ((spawn_error and ev.began) or old == "running" or old == "ready" or old == "stopping" or old == "starting") then
		if probes then probes.stop(i) end
		local x = { name = i.name, code = code, signal = sig, reason = reason, state = new,
			restarts = ev.restarts, time = ev.time }
		fire(i, "exit", x)
		reactions.wake("exit:" .. id, x)
	end
	-- (exits, like starts and readiness, are logged by C, in order with
	-- the process's output: lua/bind/host.c)
	notify("state", i, new, old)
	-- registration publishes a first "pending" that changes nothing
	if new ~= old then fire(i, "state", { name = i.name, state = new, old = old, reason = reason, time = ev.time }) end
	reactions.wake("state:" .. id, new)
	M.evaluate()
	if not shutting and not all_ready_fired and all_ready() then
		all_ready_fired = true
		run_list(defs.hooks.ready, {})
	end
	check_done()
end

local function on_line(ev)
	local id, line, stream, t, continued = ev.id, ev.line, ev.stream, ev.time, ev.continued
	local i = inst[id]
	if not i then return end
	if i.probe_line and not i.ready then
		local caps = { line:match(i.probe_line) }
		if caps[1] ~= nil then
			i.captures = caps
			i.probe_line = nil
			M.line_interest(i, false)
			raw.set_ready(id)
		end
	end
	local list = i.def.reactions.line
	if list and list[1] then
		for _, r in ipairs { unpack(list) } do -- a copy: see run_list
			if not r.removed and (not r.stream or r.stream == stream) then
				local caps = { line:match(r.pattern) }
				if caps[1] ~= nil then
					reactions.run(r, { name = i.name, line = line, stream = stream, time = t,
						seq = ev.seq, continued = continued, captures = caps }, unpack(caps))
				end
			end
		end
	end
end


-- Events from C are tables { kind, id, time, ...fields } (lua/bind/host.h);
-- one handler per kind.  A new kind of event is one entry here.
M.handlers = {
	state = on_state,
	line = on_line,
	timer = function(ev) return reactions.on_timer(ev.id) end,
	idle = function() return check_done() end,
	signal = function(ev)
		if not shutting then
			log("received SIG%s, stopping", ev.signal)
			M.shutdown(anything_active() and 128 + ev.signo or outcome_code())
		end
	end,
	exec = function(ev)
		if probes == nil then probes = require "hum.probes" end
		return probes.on_event(ev)
	end,
	command = function(ev)
		claim("command", ev.id, ev.request)
	end,
}
M.handlers.probe = M.handlers.exec

-- C calls this for every event; it is never re-entered (raw calls queue
-- events, they do not dispatch them).
function M.dispatch(ev)
	local h = M.handlers[ev.kind]
	if not h then return end
	dispatching = true
	local a, b = h(ev)
	dispatching = false
	if settled then
		settled = false
		check_done()
	end
	return a, b
end

-- Shutdown in reverse dependency order ---------------------------------------
local function dependents_active(i)
	for _, j in ipairs(inst_list) do
		if ACTIVE[j.state] then
			for _, d in ipairs(j.def.after) do
				if d.proc == i.def then return true end
			end
		end
	end
	return false
end

function M.shutdown_step()
	local active = false
	for _, i in ipairs(inst_list) do
		if i.state == "pending" then
			raw.stop(i.id)
		elseif ACTIVE[i.state] then
			active = true
			if i.state ~= "stopping" and not i.stop_sent and not dependents_active(i) then
				i.stop_sent = true
				raw.stop(i.id)
			end
		end
	end
	if not active and not anything_active() then M.finish(exit_code) end
end

function M.shutdown(code)
	if shutting then return end
	shutting = true
	exit_code = code or 0
	run_list(defs.hooks.shutdown, { code = exit_code })
	for _, i in ipairs(inst_list) do i.wanted = false end
	M.shutdown_step()
	-- safety net: the supervisor's own grace timers end every process; this
	-- only guards against a bug leaving hum waiting forever
	local longest = 0
	for _, i in ipairs(inst_list) do longest = math.max(longest, i.def.stop_spec.grace) end
	reactions.new_timer(longest * (#inst_list + 1) + 10, 0, function()
		local left = {}
		for _, i in ipairs(inst_list) do
			if ACTIVE[i.state] then left[#left + 1] = ("%s (%s)"):format(i.name, i.state) end
		end
		log("shutdown took too long (still active: %s; %d with a live pid or open pipe); killing every process group",
			#left > 0 and table.concat(left, ", ") or "none", raw.active())
		raw.kill_all()
		M.finish(exit_code ~= 0 and exit_code or 1)
	end)
end

function M.shutting_down() return shutting end

local finished = false
function M.finish(code)
	if finished then return end
	finished = true
	raw.quit(code)
end

-- Selection -------------------------------------------------------------------
-- What a selector selects is defined once, in C (core/state/select.h): a
-- glob matched against a process's name, its replica base and its groups.
-- The control socket's reads (hum status, hum logs) call the same function,
-- so every command selects the same processes.  Both functions return a list
-- (empty when nothing matches) and, when the selector itself is refused (too
-- long, a [ without ], ...), an empty list and the message.

-- A selector -> the registered instances it selects, in registration order.
function M.select(sel)
	local ids, err = raw.select(sel)
	local out = {}
	for _, id in ipairs(ids or {}) do out[#out + 1] = inst[id] end
	return out, err
end

-- A selector -> the definitions with an instance it selects, before anything
-- is registered (`hum up NAME` chooses before it may fork into the
-- background): the same C test, on the name, groups and base each instance
-- will be registered with.
function M.select_defs(sel)
	local out = {}
	for _, p in ipairs(defs.list) do
		local groups = table.concat(p.groups, ",")
		for r = 1, p.scale do
			local name, base = instance_name(p, r)
			local hit, err = raw.select_match(sel, name, groups, base)
			if err then return {}, err end
			if hit then
				out[#out + 1] = p
				break
			end
		end
	end
	return out
end

-- Makes a finished instance startable again (pending, asked to start).
local function revive(i)
	i.restart_wanted = true
	i.state = "pending"
	i.reason = nil
	i.starting = false
	cands[i] = true
end

-- An explicit start: i runs again whatever its last run did, and whatever
-- it depends on that was stopped or failed starts again too (a dependency
-- that succeeded stays done: it satisfies `succeeded` and `completed`).
function M.start_instance(i)
	M.want(i)
	if FINAL[i.state] then revive(i) end
	local seen = { [i] = true }
	local function deps(x)
		for _, d in ipairs(x.def.after) do
			for _, di in ipairs(M.instances(d.proc)) do
				if not seen[di] then
					seen[di] = true
					di.wanted = true
					cands[di] = true
					if di.state == "stopped" or di.state == "failed" then revive(di) end
					deps(di)
				end
			end
		end
	end
	deps(i)
	cands[i] = true
	M.evaluate()
end

return M
