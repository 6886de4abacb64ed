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
local exit_code = nil  -- set by shutdown(code); nil: the outcome (outcome_code)
local failed_any = false -- something failed during the run (the exit status)
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
--   gate(i, ok, why) i's "may start" changed: true (open), nil (not yet),
--                    false (can never hold without a user's command)
--   teardown()       once the loop has returned (M.run), newest first: the
--                    API thread must stop before the supervisor is freed
--   reopen()         SIGUSR1: log files should be reopened (rotation)
local listeners = { idle = {}, state = {}, command = {}, teardown = {}, gate = {}, reopen = {} }
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

-- Dependencies ----------------------------------------------------------------
-- The start side's rules, each defined once here and used by every consumer
-- (README, "Lifecycle rules"):
--
--   ready now   an instance is ready while its published state is `ready`
--               (M.ready_now): stopping, stopped, backoff and failed never
--               are.  C derives the snapshot's `ready` flag from the state
--               the same way, so the socket and p:status() agree with
--               gating, hum.wait and hum.on("ready").
--   may start   every `after` condition holds now (edge() below, cached per
--               instance as i.gate).  The cached gate is also C's start gate
--               (raw.set_gate): C refuses every spawn while it is closed —
--               first start, restart, a policy restart when its backoff
--               ends, the second half of a restart — and publishes the
--               process `pending` with the gate's reason instead; it starts
--               once the gate opens (evaluate).  So no start path can pass
--               it, whether Lua or C began the start.
--   can never   a condition that can no longer become true without a user's
--               command (its process failed, was stopped, exited without
--               becoming ready, gave up its readiness probe, or waits itself
--               for something that can never happen): i.gate == false, and
--               i.cause names the root ("db failed").  Those who wait for it
--               show "X cannot start: <root>"; nothing is retried, but a
--               user's start of the dependency reopens everything (its
--               state changes, so its dependents are examined again).
--
-- Conditions are judged on the state C has published (raw.state), not on
-- i.state, which follows the events and may lag behind within a dispatch
-- (a reaction's p:stop() publishes `stopping` at once; its event comes
-- later).  Judging ahead of the events is safe: every publish is an event,
-- and each one makes the dependents look again.
--
-- Cost: a state change re-examines only the dependents of the instance that
-- changed, through a work queue (no recursion: an `after` chain of any
-- length costs the same per step), and only those whose gate then changed
-- pass it on.  Instances ready to start wait in a heap ordered by
-- definition order.  Whole-graph walks (want, start_instance) use explicit
-- stacks.

function M.ready_now(i) return raw.state(i.id) == "ready" end
local ready_now = M.ready_now

-- Whether a condition holds now, given the dependency instance's state.
local HOLDS = {
	started = function(s) return s == "running" or s == "ready" or s == "succeeded" end,
	ready = function(s) return s == "ready" end,
	succeeded = function(s) return s == "succeeded" end,
	completed = function(s, spawn_error) return s == "succeeded" or (s == "failed" and not spawn_error) end,
}

-- A final state that is about to move anyway: revived by a start, or
-- restarted (the old run's `stopped` comes just before the new run).
local function will_move(di) return di.restart_wanted or di.restarting end

-- One edge: i waits for di to meet cond.  true; or false, why, cause,
-- failure (can never hold without a user's command; cause is the root, and
-- failure says whether the root is a failure rather than a user's stop);
-- or nil, why.
local function edge(di, cond)
	local s, spawn_error = raw.state(di.id)
	if HOLDS[cond](s, spawn_error) then return true end
	local never
	if will_move(di) then
		never = nil
	elseif s == "pending" then
		if di.gate == false then
			return false, ("%s cannot start: %s"):format(di.name, di.cause), di.cause, di.cause_failure
		end
	elseif s == "stopped" then
		never = di.name .. " stopped"
		return false, never, never, false
	elseif s == "failed" then never = di.name .. " failed"
	elseif s == "succeeded" then never = di.name .. " exited before it was ready"
	elseif cond == "ready" and di.probe_failed and s == "running" then
		never = di.name .. " never became ready"
	end
	if never then return false, never, never, true end
	return nil, ("waiting for %s (%s)"):format(di.name, cond)
end

-- The gate of i: true, or false/nil with the reason (and the root cause
-- when false).  "Can never" wins over "not yet": it is the news.
local function gate_of(i)
	local wait
	for _, e in ipairs(i.deps) do
		local ok, why, cause, failure = edge(e.di, e.cond)
		if ok == false then return false, why, cause, failure end
		if ok == nil and not wait then wait = why end
	end
	if wait then return nil, wait end
	return true
end

-- Links i to the instances it waits for (i.deps) and they to it (rdeps).
local function link(i)
	i.deps = {}
	for _, d in ipairs(i.def.after) do
		for _, di in ipairs(M.instances(d.proc)) do
			i.deps[#i.deps + 1] = { di = di, cond = d.cond }
			di.rdeps[#di.rdeps + 1] = i
		end
	end
end

-- A min-heap of instances by definition order (idx), each at most once.
local function heap_new() return { n = 0, has = {} } end
local function heap_push(h, i)
	if h.has[i] then return end
	h.has[i] = true
	local n = h.n + 1
	h.n = n
	h[n] = i
	while n > 1 do
		local up = math.floor(n / 2)
		if h[up].idx <= i.idx then break end
		h[n], h[up] = h[up], i
		n = up
	end
end
local function heap_pop(h)
	local top = h[1]
	if not top then return nil end
	local last = h[h.n]
	h[h.n] = nil
	h.n = h.n - 1
	h.has[top] = nil
	if h.n > 0 then
		local k = 1
		h[1] = last
		while true do
			local l, r, m = 2 * k, 2 * k + 1, k
			if l <= h.n and h[l].idx < h[m].idx then m = l end
			if r <= h.n and h[r].idx < h[m].idx then m = r end
			if m == k then break end
			h[k], h[m] = h[m], h[k]
			k = m
		end
	end
	return top
end

local startable = heap_new() -- candidates whose gate is open
local slot_wait = heap_new() -- tasks whose gate is open, waiting for a job slot
-- Lazily cleaned sets (a member that no longer qualifies is dropped when
-- met), so the questions "is anything active / waiting / not ready yet?"
-- cost O(1) amortized instead of a walk over every instance:
local active = {}  -- may be active (ACTIVE state, or being started)
local waiting = {} -- may be a wanted candidate that can still start
local unready = {} -- may be wanted and not done (hum.on("ready"))

local jobs_running = 0
M.jobs = nil -- maximum concurrently running tasks (hum run); nil = no limit

-- Wanted and waiting to be started: pending, or finished and asked to run
-- again (revived), and not being started already.
local function candidate(i)
	return i.wanted and not i.starting and (i.state == "pending" or (FINAL[i.state] and i.restart_wanted))
end

local function show_wait(i, why)
	if i.reason ~= why then
		i.reason = why
		raw.set_pending(i.id, why)
	end
end

-- i may have become startable, or its reason for waiting may have changed.
local function consider(i)
	if not candidate(i) then return end
	waiting[i] = true
	if i.gate == true then
		heap_push(startable, i)
	else
		show_wait(i, i.gate_why)
	end
end

-- Re-examines i's gate; returns whether it changed in a way that matters
-- to i's dependents (open/closed/never, or the root cause).
local function refresh(i)
	local ok, why, cause, failure = gate_of(i)
	local was, was_cause, was_failure = i.gate, i.cause, i.cause_failure
	if ok == was and why == i.gate_why and cause == was_cause and failure == i.cause_failure then
		return false
	end
	i.gate, i.gate_why, i.cause, i.cause_failure = ok, why, cause, failure
	raw.set_gate(i.id, ok ~= true and why or nil)
	if ok == false and was ~= false and candidate(i) and why == cause then
		-- the first of a chain (its dependents carry the reason without a line each)
		log("%s cannot start: %s", i.name, why)
	end
	notify("gate", i, ok, why)
	consider(i)
	return ok ~= was or cause ~= was_cause or failure ~= was_failure
end

-- Work queue: dependents of what changed.  Never re-entered: a listener
-- that causes more changes adds to the queue being processed.
local queue, queued, settling = {}, {}, false
local function touch(i)
	for _, j in ipairs(i.rdeps) do
		if not queued[j] then
			queued[j] = true
			queue[#queue + 1] = j
		end
	end
end

local function settle()
	if settling then return end
	settling = true
	local k = 1
	while queue[k] do
		local j = queue[k]
		queue[k] = nil
		queued[j] = nil
		k = k + 1
		if refresh(j) then touch(j) end
	end
	settling = false
end

-- i changed in a way its dependents may care about (a probe gave up).
function M.changed(i)
	touch(i)
	M.evaluate()
end

function M.gate(i) return i.gate, i.gate_why, i.cause end

local function mark_wanted(i)
	if not i.wanted then
		i.wanted = true
		unready[i] = true
	end
	consider(i)
end

-- Marks i and, transitively, its dependencies as wanted (an explicit stack:
-- a chain of any length).
function M.want(i)
	if i.wanted then return end
	local stack = { i }
	while #stack > 0 do
		local x = stack[#stack]
		stack[#stack] = nil
		if not x.wanted then
			mark_wanted(x)
			for _, e in ipairs(x.deps) do
				if not e.di.wanted then stack[#stack + 1] = e.di end
			end
		end
	end
end

function M.unwant(i)
	i.wanted = false
	i.restart_wanted, i.restarting = nil, nil
end

local function start(i)
	i.starting = true
	i.restart_wanted = nil
	active[i] = true
	if i.def.kind == "task" and not i.job then
		i.job = true
		jobs_running = jobs_running + 1
	end
	-- a spawn error is published as `failed` (and logged by the supervisor
	-- with its reason): nothing to add
	raw.start(i.id)
end

local function slot_free() return not M.jobs or jobs_running < M.jobs end

-- Starts every wanted instance whose gate is open, in definition order
-- (tasks within the job limit of `hum run`).
function M.evaluate()
	settle()
	if shutting then return end
	while slot_wait.n > 0 and slot_free() do
		local i = heap_pop(slot_wait)
		if candidate(i) and i.gate == true then start(i) end
	end
	while startable.n > 0 do
		local i = heap_pop(startable)
		if candidate(i) and i.gate == true then
			if i.def.kind == "task" and not i.job and not slot_free() then
				heap_push(slot_wait, i)
				show_wait(i, "waiting for a job slot")
			else
				start(i)
			end
		end
	end
end

-- Registration ---------------------------------------------------------------
-- hum's environment (unless env_clear) with hum.env and env files applied:
-- the same for every process, so made once per registration (10,000
-- processes must not read and merge the environment 10,000 times).
local base_envs
local function base_env(clear)
	local key = clear and "clear" or "inherit"
	if not base_envs[key] then
		local env = clear and {} or raw.environ()
		for _, kv in ipairs(defs.env) do
			env[kv[1]] = kv[2] ~= false and tostring(kv[2]) or nil
		end
		base_envs[key] = env
	end
	return base_envs[key]
end

local function build_env(p, replica, name, cwd)
	local env = {}
	for k, v in pairs(base_env(p.env_clear)) do env[k] = v end
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
local function instance_name(p, r)
	if p.scale > 1 then return p.name .. "." .. r, p.name end
	return p.name, ""
end

-- Definition -> its instances.  The runtime never writes into definitions
-- (they are the user's config, and a later generation may compare them);
-- a one-instance view (hum.get "web.2") carries its own `instances`.
local of_def = setmetatable({}, { __mode = "k" })
function M.instances(p) return p.instances or of_def[p] or {} end

-- The reason a process with autostart = false shows until something starts
-- it (README, "Process states").
function M.manual_reason(p)
	return ("manual (autostart = false): start it with hum start %s"):format(p.name)
end

function M.register_all(base_dir)
	base_envs = {}
	for _, p in ipairs(defs.list) do
		local list = {}
		of_def[p] = list
		for r = 1, p.scale do
			local name, base = instance_name(p, r)
			local cwd = util.resolve(base_dir, p.cwd or ".")
			local spec = {
				kind = p.kind == "task" and raw.TASK or raw.SERVICE,
				cwd = cwd,
				env = build_env(p, r, name, cwd),
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
			-- never started by itself: say so, rather than C's "not started"
			if not p.autostart then raw.set_pending(id, M.manual_reason(p)) end
			local i = { id = id, name = name, def = p, replica = r, state = "pending", cwd = cwd,
				env = spec.env, wanted = false, rdeps = {}, idx = #inst_list + 1 }
			inst[id], by_name[name] = i, i
			inst_list[#inst_list + 1] = i
			list[#list + 1] = i
		end
		M.watch_lines(p)
	end
	-- every instance exists: link the graph and close the gates of those
	-- that wait for something (everything is pending: nothing can be
	-- "never" yet, so no propagation is needed)
	for _, i in ipairs(inst_list) do link(i) end
	for _, i in ipairs(inst_list) do
		if i.deps[1] then refresh(i) else i.gate = true end
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

-- What hum.on("ready") waits for, per instance: a task succeeded, a
-- service ready now.
local function done(i)
	if i.def.kind == "task" then return raw.state(i.id) == "succeeded" end
	return ready_now(i)
end

-- Every wanted instance is done, now.
local function all_ready()
	for i in pairs(unready) do
		if i.wanted and not done(i) then return false end
		unready[i] = nil
	end
	return true
end

-- Processes that remain after a main process exited, and pipes they hold,
-- do not count: they never keep `hum up` from returning (check_done stops
-- them, with their grace, on the way out).
local function anything_active()
	for i in pairs(active) do
		if ACTIVE[i.state] or i.starting then return true end
		active[i] = nil
	end
	return false
end

-- Can anything still happen without a user's command?  A reaction that is
-- suspended (sleeping, waiting, exec'ing) may still start or stop something.
local function progress_possible()
	if anything_active() or reactions.live > 0 then return true end
	for i in pairs(waiting) do
		if candidate(i) and i.gate ~= false then return true end
		waiting[i] = nil
	end
	return false
end

local function outcome_code()
	if failed_any then return 1 end -- whatever failed during the run, even if it runs again
	for _, i in ipairs(inst_list) do
		if i.wanted then
			if i.state == "failed" then return 1 end
			if i.def.kind == "task" and i.state ~= "succeeded" then return 1 end
			-- waited for something that could never happen
			-- (a user's stop of a dependency is not a failure)
			if i.state == "pending" and i.gate == false and i.cause_failure then return 1 end
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
		-- nothing runs and nothing can start: hum is done, and stops
		-- what remains of finished runs on its way out (no hooks: it
		-- was not asked to shut down).  The outcome now, while `wanted`
		-- still says which tasks were asked for.
		M.shutdown(outcome_code(), { quiet = true })
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
	-- what remains of the run after its main process exited (remain.c)
	i.remaining, i.counting, i.paused = ev.remaining or 0, ev.counting or false, ev.paused or false
	if new == "failed" and ev.ended then failed_any = true end
	if new ~= "pending" then i.starting = false end
	-- a restart's new run began, or the gate deferred it (pending)
	if ev.began or new == "pending" then i.restarting = nil end
	if ACTIVE[new] then active[i] = true end
	if i.wanted and not done(i) then unready[i] = true end
	-- a task holds a job slot from its start until it leaves the active states
	if i.job and not ACTIVE[new] and new ~= "pending" then
		i.job = false
		jobs_running = jobs_running - 1
	end
	if probes == nil then probes = require "hum.probes" end
	local began_running = new == "running" and ev.began
	local became_ready = new == "ready" and old ~= "ready"
	if began_running then
		if i.def.ready_probe then
			probes.start_ready(i)
		else
			raw.set_ready(id)
		end
	elseif became_ready and i.def.liveness then
		probes.start_liveness(i)
	end
	-- What waits for i looks again (its gate and reason change now), before
	-- any reaction runs: a reaction woken by this event sees the graph as
	-- it is after it.  i itself may start, or show why not.
	if new ~= old or ev.began then touch(i) end
	consider(i)
	settle()
	if began_running then
		fire(i, "start", { name = i.name, pid = ev.pid, restarts = ev.restarts, time = ev.time })
	elseif became_ready then
		fire(i, "ready", { name = i.name, captures = i.captures or {}, time = ev.time })
		reactions.wake("ready:" .. id, true)
	end
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
	if shutting then M.shutdown_note(i) end
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
	if i.probe_line and not ready_now(i) then
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
		local h = M.signals[ev.signal]
		if h then h(ev) end
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
-- The rule (README "Lifecycle rules"): a process is stopped only once
-- everything that depends on it, directly or transitively, has exited —
-- also through tasks that finished and processes that are not running: with
-- db <- migrate (a task, done) <- web, web is stopped first and db only
-- once web has exited.  A process has exited when its whole run is over:
-- its main process and whatever remained of it (alive() below).
--
-- Linear in the size of the config: the plan is built once when shutdown
-- begins, then only counted down.  Each definition D has a counter: the
-- dependents of D not yet released (every instance of every definition
-- with D in its `after`).  An instance is released once it is not alive
-- and its definition's counter is 0; releasing it decrements the counters
-- of the definitions it depends on; a counter that reaches 0 makes that
-- definition's instances stoppable: stopped when alive, released when not.
-- Each edge of the graph is counted down once; a state event costs O(1).
local plan -- while shutting down
local finished = false

-- The run is not over: a live state, a start on its way, or processes that
-- remain after the main process exited (or are being counted).
local function alive(i)
	return (ACTIVE[i.state] or i.starting or (i.remaining or 0) > 0 or i.counting) and true or false
end
M.alive = alive

local function stop_once(i)
	-- a stop of a stopping process, or a second one of what remains of a
	-- finished run, changes nothing in C; only alive ones are asked
	if i.state ~= "stopping" then raw.stop(i.id) end
end

-- Stoppable instances waiting in plan.queue: stop the alive ones, release
-- the others, and make stoppable what that releases.
local function push(i)
	plan.tail = plan.tail + 1
	plan.queue[plan.tail] = i
end

local function settle()
	local q, released, waiting = plan.queue, plan.released, plan.waiting
	while plan.head <= plan.tail do
		local i = q[plan.head]
		q[plan.head] = nil
		plan.head = plan.head + 1
		if not released[i] then
			if alive(i) then
				stop_once(i)
			else
				released[i] = true
				plan.left = plan.left - 1
				for _, dep in ipairs(plan.deps[i.def]) do
					local w = waiting[dep] - 1
					waiting[dep] = w
					if w == 0 then
						for _, k in ipairs(M.instances(dep)) do push(k) end
					end
				end
			end
		end
	end
end

-- ordered = false (SIGQUIT): every instance is stoppable at once.
local function plan_build(ordered)
	plan = { deps = {}, waiting = {}, released = {}, queue = {}, head = 1, tail = 0,
		left = #inst_list, nalive = 0, ordered = ordered }
	for _, d in ipairs(defs.list) do
		local seen, list = {}, {}
		for _, a in ipairs(d.after) do
			if not seen[a.proc] and a.proc ~= d then
				seen[a.proc] = true
				list[#list + 1] = a.proc
			end
		end
		plan.deps[d] = list
	end
	local waiting = plan.waiting
	for _, d in ipairs(defs.list) do
		local n = ordered and #M.instances(d) or 0
		for _, dep in ipairs(plan.deps[d]) do waiting[dep] = (waiting[dep] or 0) + n end
	end
	for _, i in ipairs(inst_list) do
		i.was_alive = alive(i)
		if i.was_alive then plan.nalive = plan.nalive + 1 end
		if (waiting[i.def] or 0) == 0 then push(i) end
		waiting[i.def] = waiting[i.def] or 0
	end
end

-- A state event during shutdown (O(1); shutdown_step settles what follows).
function M.shutdown_note(i)
	local a = alive(i)
	if a ~= i.was_alive then
		plan.nalive = plan.nalive + (a and 1 or -1)
		i.was_alive = a
	end
	if a and plan.waiting[i.def] == 0 then
		-- stoppable (or released, and running again: a reaction started
		-- it): asked to stop, or still on its way out
		stop_once(i)
	elseif not a and not plan.released[i] and plan.waiting[i.def] == 0 then
		push(i)
	end
end

local drain_timer
function M.shutdown_step()
	settle()
	if plan.left > 0 or plan.nalive > 0 then return end
	-- Everything exited.  Pipes that a killed process held reach EOF at
	-- once; one held by a process nobody can identify (it left the group
	-- and scrubbed its environment) must not keep hum: wait at most 1 s.
	if raw.active() > 0 then
		raw.notify_idle()
		if not drain_timer then
			drain_timer = reactions.new_timer(1, 0, function()
				log("%d pipe(s) still open after every process exited; not waiting for them", raw.active())
				M.finish(exit_code or outcome_code())
			end)
		end
		return
	end
	M.finish(exit_code or outcome_code())
end

-- Stops everything and ends hum.  code: hum's exit status (nil: the
-- outcome, 1 when anything failed during the run, else 0).  opts.quiet:
-- hum ends by itself (no shutdown hooks); opts.now (SIGQUIT): stop every
-- process at once, each with its own grace, not in dependency order.
function M.shutdown(code, opts)
	opts = opts or {}
	if shutting then
		if opts.now and plan.ordered then
			-- SIGQUIT during an ordered shutdown: whatever is left goes now
			plan.ordered = false
			for d in pairs(plan.waiting) do plan.waiting[d] = 0 end
			for _, i in ipairs(inst_list) do
				if not plan.released[i] then push(i) end
			end
			M.shutdown_step()
		end
		return
	end
	shutting = true
	exit_code = code
	for _, i in ipairs(inst_list) do
		i.wanted = false
		-- never started: nothing to wait for, and nothing may start it now
		if i.state == "pending" and not i.starting then raw.stop(i.id) end
	end
	plan_build(not opts.now)
	if not opts.quiet then run_list(defs.hooks.shutdown, { code = code or outcome_code() }) end
	M.shutdown_step()
	if finished then return end
	-- safety net: the supervisor's own grace timers end every process; this
	-- only guards against a bug leaving hum waiting forever
	local longest = 0
	for _, d in ipairs(defs.list) do longest = math.max(longest, d.stop_spec.grace) end
	reactions.new_timer(longest * (#inst_list + 1) + 10, 0, function()
		local left = {}
		for _, i in ipairs(inst_list) do
			if alive(i) and #left < 20 then left[#left + 1] = ("%s (%s)"):format(i.name, i.state) end
		end
		log("shutdown took too long (still active: %s; %d with a live pid or open pipe); killing every process group",
			#left > 0 and table.concat(left, ", ") or "none", raw.active())
		raw.kill_all()
		M.finish(exit_code ~= nil and exit_code ~= 0 and exit_code or 1)
	end)
end

function M.shutting_down() return shutting end

function M.finish(code)
	if finished then return end
	finished = true
	raw.quit(code)
end

-- Signals to hum (README "Signals").  C leaves a signal that was ignored when
-- hum started ignored (nohup), suspends for SIGTSTP, and kills every group
-- on a second SIGINT or SIGQUIT; what the others mean is here.
local function stop_on(ev, how)
	if shutting and not how.now then return end
	if not shutting then log("received SIG%s, %s", ev.signal, how.what) end
	-- 128+N while processes were running; otherwise the outcome
	local running = false
	for _, i in ipairs(inst_list) do
		if alive(i) then running = true break end
	end
	M.shutdown(running and 128 + ev.signo or nil, how)
end

-- A `hum ps` in hum's own output (SIGUSR2): every process that was started
-- or asked for, and how many were never started.
function M.report()
	local quiet = 0
	log("processes (SIGUSR2):")
	for _, i in ipairs(inst_list) do
		if i.state == "pending" and not i.wanted then
			quiet = quiet + 1
		else
			local s = raw.status(i.id)
			local extra = ""
			if s.paused then extra = extra .. " paused" end
			log("  %-20s %-9s pid %-7s %s%s", i.name, s.state, s.pid ~= 0 and s.pid or "-", s.reason, extra)
		end
	end
	if quiet > 0 then log("  and %d not started", quiet) end
end

M.signals = {
	INT = function(ev) stop_on(ev, { what = "stopping" }) end,
	TERM = function(ev) stop_on(ev, { what = "stopping" }) end,
	HUP = function(ev) stop_on(ev, { what = "stopping" }) end,
	QUIT = function(ev) stop_on(ev, { what = "stopping every process now", now = true }) end,
	USR1 = function()
		log("received SIGUSR1: reopening log files")
		notify("reopen")
	end,
	USR2 = function() M.report() end,
}

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
	touch(i) -- it is about to move: what waited for it waits again
end

-- An explicit start: i runs again whatever its last run did, and whatever
-- it depends on, transitively, is wanted again, a stopped or failed one
-- revived (a dependency that succeeded stays done: it satisfies
-- `succeeded` and `completed`).  The start itself goes through the gate
-- like every other: i waits `pending` until its conditions hold.
local AGAIN = { stopped = true, failed = true }

-- x is to run again if its published state is in `over`: a finished run is
-- revived; a run being stopped starts again once it is over (C carries
-- that out, through the gate).  The published state, not x.state: a stop
-- asked just before may not have reached Lua as an event yet.
local function rerun(x, over)
	local s = raw.state(x.id)
	if over[s] then
		revive(x)
	elseif s == "stopping" then
		x.restarting = true
		raw.start(x.id)
	end
end

function M.start_instance(i)
	rerun(i, FINAL)
	local seen, stack = { [i] = true }, { i }
	while #stack > 0 do
		local x = stack[#stack]
		stack[#stack] = nil
		mark_wanted(x)
		for _, e in ipairs(x.deps) do
			local di = e.di
			if not seen[di] then
				seen[di] = true
				rerun(di, AGAIN)
				stack[#stack + 1] = di
			end
		end
	end
	M.evaluate()
end

-- An explicit restart (p:restart(), hum.restart, `hum restart`): a live
-- run is stopped and C starts the next one once it is over — through the
-- start gate, so with a dependency not ready the new run waits `pending`.
-- Anything not live is started as by start_instance.
function M.restart_instance(i)
	M.want(i)
	if FINAL[i.state] or i.state == "pending" then return M.start_instance(i) end
	i.restarting = true
	raw.restart(i.id)
end

-- An explicit stop: no longer wanted, so nothing starts it again by itself.
function M.stop_instance(i)
	M.unwant(i)
	raw.stop(i.id)
end

return M
