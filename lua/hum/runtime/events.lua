-- hum.runtime.events — what a runtime generation does with the events C
-- sends (state, line, removed, timer, signal, command, exec/probe results):
-- one handler per event kind, reactions fired in a fixed order, and the
-- judgement "can anything still happen?" that ends `hum up` and `hum run`.
-- Methods of the runtime object.
--
-- Events from C are tables { kind, id, time, ...fields } built in one place
-- (lua/bind/events.c); a new kind of event is one entry in E.handlers.
local raw = require "hum.raw"
local reactions = require "hum.reactions"

local E = {}

local ACTIVE = { starting = true, running = true, ready = true, stopping = true, backoff = true }
local FINAL = { stopped = true, succeeded = true, failed = true }
E.ACTIVE, E.FINAL = ACTIVE, FINAL

-- The state C has published for i; for an instance being removed, the last
-- one Lua saw: C may retire it (its id then names nothing) while events
-- about it are still queued for Lua.
local function rt_state(i)
	if i.removing or i.removed then return i.state end
	return raw.state(i.id)
end

local probes -- hum.probes, loaded lazily (it requires hum.runtime)
local function probes_mod()
	if probes == nil then probes = require "hum.probes" end
	return probes
end

-- Runs every reaction of a list.  A reaction may :off() itself or another
-- one while the list is walked (removing from it): walk a copy, and skip
-- reactions switched off since the walk began.
function E.run_list(list, ...)
	if not list or not list[1] then return end
	local copy = { unpack(list) }
	for _, r in ipairs(copy) do
		if not r.removed then reactions.run(r, ...) end
	end
end
local run_list = E.run_list

-- The reactions of i's definition to `event`, then the config-wide ones.
function E.fire(rt, i, event, ev, ...)
	run_list(i.def.reactions[event], ev, ...)
	-- hum.on("ready") means "everything is ready" (see on_state), not one process
	if event ~= "ready" then run_list(rt.defs.hooks[event], ev, ...) end
end

-- What hum.on("ready") waits for, per instance: a task succeeded, a
-- service ready now.
local function done(i)
	local s = rt_state(i)
	if i.def.kind == "task" then return s == "succeeded" end
	return s == "ready"
end

-- Every wanted instance is done, now.  (rt.unready, rt.active and
-- rt.waiting are lazily cleaned sets: a member that no longer qualifies is
-- dropped when met, so these questions cost O(1) amortized instead of a
-- walk over every instance.)
local function all_ready(rt)
	for i in pairs(rt.unready) do
		if i.wanted and not done(i) then return false end
		rt.unready[i] = nil
	end
	return true
end

-- Processes that remain after a main process exited, and pipes they hold,
-- do not count: they never keep `hum up` from returning (check_done stops
-- them, with their grace, on the way out).
local function anything_active(rt)
	for i in pairs(rt.active) do
		if ACTIVE[i.state] or i.starting then return true end
		rt.active[i] = nil
	end
	return false
end

-- Can anything still happen without a user's command?  A reaction that is
-- suspended (sleeping, waiting, exec'ing) may still start or stop something.
local function progress_possible(rt)
	if anything_active(rt) or reactions.live > 0 then return true end
	for i in pairs(rt.waiting) do
		if rt.candidate(i) and i.gate ~= false then return true end
		rt.waiting[i] = nil
	end
	return false
end

-- hum's exit status from what happened: 1 when anything failed during the
-- run (even if it runs again), a wanted task did not succeed, or a wanted
-- instance waited for something that could never happen; else 0.
function E.outcome_code(rt)
	if rt.failed_any then return 1 end
	for _, i in ipairs(rt.inst_list) do
		if i.wanted then
			if i.state == "failed" then return 1 end
			if i.def.kind == "task" and i.state ~= "succeeded" then return 1 end
			-- (a user's stop of a dependency is not a failure)
			if i.state == "pending" and i.gate == false and i.cause_failure then return 1 end
		end
	end
	return 0
end

function E.check_done(rt)
	if rt.shutting then
		-- ordered shutdown: stop whatever has no running dependents left
		rt:shutdown_step()
		return
	end
	if not progress_possible(rt) then
		if rt:claim("idle") then return end
		-- nothing runs and nothing can start: hum is done, and stops
		-- what remains of finished runs on its way out (no hooks: it
		-- was not asked to shut down).  The outcome now, while `wanted`
		-- still says which tasks were asked for.
		rt:shutdown(rt:outcome_code(), { quiet = true })
	end
end

-- The last live reaction finished.  It may finish in the middle of a
-- dispatch (the first of several reactions to one event): judging "done"
-- then would quit before the others run.  Inside a dispatch, judge once it
-- returns.
function E.reactions_settled(rt)
	if rt.dispatching then rt.settled = true else rt:check_done() end
end

local function on_state(rt, ev)
	local id, new, old, reason, code, sig = ev.id, ev.state, ev.old, ev.reason, ev.code, ev.signal
	local i = rt.inst[id]
	if not i then return end
	i.state, i.reason = new, reason
	i.exit_code, i.signal = code, sig
	-- what remains of the run after its main process exited (remain.c)
	i.remaining, i.counting, i.paused = ev.remaining or 0, ev.counting or false, ev.paused or false
	if new == "failed" and ev.ended then rt.failed_any = true end
	if new ~= "pending" then i.starting = false end
	-- a restart's new run began, or the gate deferred it (pending)
	if ev.began or new == "pending" then i.restarting = nil end
	if ACTIVE[new] then rt.active[i] = true end
	if i.wanted and not done(i) then rt.unready[i] = true end
	-- a task holds a job slot from its start until it leaves the active states
	if i.job and not ACTIVE[new] and new ~= "pending" then
		i.job = false
		rt.jobs_running = rt.jobs_running - 1
	end
	local pr = probes_mod()
	local began_running = new == "running" and ev.began
	local became_ready = new == "ready" and old ~= "ready"
	if began_running then
		if i.def.ready_probe then
			pr.start_ready(i)
		else
			raw.set_ready(id)
		end
	elseif became_ready and i.def.liveness then
		pr.start_liveness(i)
	end
	-- What waits for i looks again (its gate and reason change now), before
	-- any reaction runs: a reaction woken by this event sees the graph as
	-- it is after it.  i itself may start, or show why not.
	if new ~= old or ev.began then rt:touch(i) end
	rt:consider(i)
	rt:settle_gates()
	if began_running then
		rt:fire(i, "start", { name = i.name, pid = ev.pid, restarts = ev.restarts, time = ev.time })
	elseif became_ready then
		rt:fire(i, "ready", { name = i.name, captures = i.captures or {}, time = ev.time })
		reactions.wake("ready:" .. id, true)
	end
	-- "exit" also reports a spawn error (from pending, or from backoff when
	-- a restart could not spawn): the process failed without running
	local spawn_error = new == "failed" and ev.spawn_error
	if ev.ended and ((spawn_error and ev.began) or old == "running" or old == "ready" or old == "stopping" or old == "starting") then
		pr.stop(i)
		local x = { name = i.name, code = code, signal = sig, reason = reason, state = new,
			restarts = ev.restarts, time = ev.time }
		rt:fire(i, "exit", x)
		reactions.wake("exit:" .. id, x)
	end
	-- (exits, like starts and readiness, are logged by C, in order with
	-- the process's output: lua/bind/lifecycle.c)
	rt:notify("state", i, new, old)
	-- registration publishes a first "pending" that changes nothing
	if new ~= old then rt:fire(i, "state", { name = i.name, state = new, old = old, reason = reason, time = ev.time }) end
	reactions.wake("state:" .. id, new)
	if rt.shutting then rt:shutdown_note(i) end
	rt:evaluate()
	if not rt.shutting and not rt.all_ready_fired and all_ready(rt) then
		rt.all_ready_fired = true
		run_list(rt.defs.hooks.ready, {})
	end
	rt:check_done()
end

local function on_line(rt, ev)
	local id, line, stream, t, continued = ev.id, ev.line, ev.stream, ev.time, ev.continued
	local i = rt.inst[id]
	if not i then return end
	if i.probe_line and rt_state(i) ~= "ready" then
		local caps = { line:match(i.probe_line) }
		if caps[1] ~= nil then
			i.captures = caps
			i.probe_line = nil
			rt:line_interest(i, false)
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

-- list without x, as a new table: a caller iterating the old list (a
-- reaction's hum.wait holds a generation's instance list across yields)
-- keeps a list that does not shift under it.
local function without(list, x)
	local out = {}
	for _, y in ipairs(list) do
		if y ~= x then out[#out + 1] = y end
	end
	return out
end

-- The supervisor retired i (raw.remove; its final state came before): its
-- id names nothing from now on.  i leaves every index of the generation;
-- what waited for it can never start ("X was removed", not a failure);
-- reactions waiting on it are woken (hum.wait returns nil, "X was removed").
local function on_removed(rt, ev)
	local i = rt.inst[ev.id]
	if not i then return end
	i.removed, i.removing = true, nil
	i.wanted = false
	raw.log(("%s: removed"):format(i.name))
	probes_mod().stop(i)
	rt.inst[i.id] = nil
	if rt.by_name[i.name] == i then rt.by_name[i.name] = nil end
	rt.inst_list = without(rt.inst_list, i)
	local list = rt.of_def[i.def]
	if list then rt.of_def[i.def] = without(list, i) end
	rt.active[i], rt.waiting[i], rt.unready[i] = nil, nil, nil
	for _, e in ipairs(i.deps) do e.di.rdeps = without(e.di.rdeps, i) end
	if i.job then
		i.job = false
		rt.jobs_running = rt.jobs_running - 1
	end
	rt:touch(i)
	rt:notify("removed", i)
	reactions.wake("state:" .. i.id, "removed")
	reactions.wake("exit:" .. i.id, "removed")
	reactions.wake("ready:" .. i.id, false)
	if rt.shutting then rt:shutdown_note(i) end
	rt:evaluate()
	rt:check_done()
end

-- Retires instance i: stops its run if one is live (with its grace), and
-- once the run is over C retires the process and sends "removed".  Live
-- reload removes what a new config no longer has; a plugin may remove what
-- it added.  false when removal was asked for already.
function E.remove(rt, i)
	if type(i) ~= "table" or i.rt ~= rt then
		error("rt:remove: expected an instance of this generation (rt.by_name[NAME], rt:instances(p))", 2)
	end
	if i.removed or i.removing then return false end
	-- unwanted first: nothing starts it again, and hum.on("ready") does
	-- not wait for it
	rt:unwant(i)
	rt.unready[i], rt.waiting[i] = nil, nil
	i.removing = true
	raw.remove(i.id)
	-- what waits for it can never start now (edge(): "X was removed")
	rt:touch(i)
	rt:evaluate()
	return true
end

-- One handler per event kind: handler(rt, ev).
E.handlers = {
	state = on_state,
	line = on_line,
	removed = on_removed,
	timer = function(rt, ev) return reactions.on_timer(ev.id) end,
	idle = function(rt) return rt:check_done() end,
	signal = function(rt, ev)
		local h = rt.signals[ev.signal]
		if h then h(rt, ev) end
	end,
	exec = function(rt, ev) return probes_mod().on_event(ev) end,
	command = function(rt, ev) rt:claim("command", ev.id, ev.request) end,
}
E.handlers.probe = E.handlers.exec

-- C calls this (through hum.runtime's dispatcher) for every event; it is
-- never re-entered (raw calls queue events, they do not dispatch them).
function E.dispatch(rt, ev)
	local h = E.handlers[ev.kind]
	if not h then return end
	-- A handler's error reaches the caller (C's protected call reports it
	-- with its traceback) and leaves `dispatching` set; it is cleared here
	-- at the next event, and a judgement deferred by it (settled) is made
	-- then.  (Not a pcall per event: it would keep the JIT off this path.)
	rt.dispatching = true
	local a, b = h(rt, ev)
	rt.dispatching = false
	if rt.settled then
		rt.settled = false
		rt:check_done()
	end
	return a, b
end

return E
