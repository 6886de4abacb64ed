-- hum.runtime.shutdown — ending a runtime generation: ordered shutdown in
-- reverse dependency order, hum's exit status, and what signals to hum
-- mean.  Methods of the runtime object.
--
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
local raw = require "hum.raw"
local reactions = require "hum.reactions"

local S = {}

local ACTIVE = { starting = true, running = true, ready = true, stopping = true, backoff = true }

local function log(fmt, ...) raw.log(fmt:format(...)) end

-- The run is not over: a live state, a start on its way, or processes that
-- remain after the main process exited (or are being counted).
function S.alive(i)
	return (ACTIVE[i.state] or i.starting or (i.remaining or 0) > 0 or i.counting) and true or false
end
local alive = S.alive

local function stop_once(i)
	-- a stop of a stopping process, or a second one of what remains of a
	-- finished run, changes nothing in C; only alive ones are asked
	if i.state ~= "stopping" and not (i.removing or i.removed) then raw.stop(i.id) end
end

local function push(plan, i)
	plan.tail = plan.tail + 1
	plan.queue[plan.tail] = i
end

-- i is released: the definitions it waits for have one dependent fewer,
-- and those with none left become stoppable.
local function release(plan, i)
	plan.released[i] = true
	plan.left = plan.left - 1
	for _, dep in ipairs(plan.deps[i.def]) do
		local w = plan.waiting[dep] - 1
		plan.waiting[dep] = w
		if w == 0 then
			for _, k in ipairs(plan.members[dep]) do push(plan, k) end
		end
	end
end

-- Stoppable instances waiting in plan.queue: stop the alive ones, release
-- the others, and make stoppable what that releases.
local function settle(rt)
	local plan = rt.plan
	local q, released = plan.queue, plan.released
	while plan.head <= plan.tail do
		local i = q[plan.head]
		q[plan.head] = nil
		plan.head = plan.head + 1
		if not released[i] then
			if alive(i) then stop_once(i) else release(plan, i) end
		end
	end
end

-- ordered = false (SIGQUIT): every instance is stoppable at once.
--
-- The plan's members are the instances of each definition when shutdown
-- begins (an instance removed during shutdown stays one: released in its
-- turn, never before what depends on it).  A definition left with no
-- instance (all removed) stands in the plan as one member that is never
-- alive, so the order still passes through it: with db <- api <- web and
-- api removed, db waits for web.
local function plan_build(rt, ordered)
	local plan = { deps = {}, waiting = {}, released = {}, queue = {}, head = 1, tail = 0,
		members = {}, all = {}, left = 0, nalive = 0, ordered = ordered }
	rt.plan = plan
	for _, d in ipairs(rt.defs.list) do
		local seen, list = {}, {}
		for _, a in ipairs(d.after) do
			if not seen[a.proc] and a.proc ~= d then
				seen[a.proc] = true
				list[#list + 1] = a.proc
			end
		end
		plan.deps[d] = list
		local members = { unpack(rt:instances(d)) }
		if not members[1] then members[1] = { def = d, name = d.name, state = "stopped", placeholder = true } end
		plan.members[d] = members
		for _, i in ipairs(members) do plan.all[#plan.all + 1] = i end
	end
	plan.left = #plan.all
	local waiting = plan.waiting
	for _, d in ipairs(rt.defs.list) do
		local n = ordered and #plan.members[d] or 0
		for _, dep in ipairs(plan.deps[d]) do waiting[dep] = (waiting[dep] or 0) + n end
	end
	for _, i in ipairs(plan.all) do
		i.was_alive = alive(i)
		if i.was_alive then plan.nalive = plan.nalive + 1 end
		if (waiting[i.def] or 0) == 0 then push(plan, i) end
		waiting[i.def] = waiting[i.def] or 0
	end
end

-- A state event during shutdown, or a removal (O(1); shutdown_step settles
-- what follows).
function S.shutdown_note(rt, i)
	local plan = rt.plan
	local a = alive(i)
	if a ~= i.was_alive then
		plan.nalive = plan.nalive + (a and 1 or -1)
		i.was_alive = a
	end
	if plan.waiting[i.def] ~= 0 then return end
	if a then
		-- stoppable (or released, and running again: a reaction started
		-- it): asked to stop, or still on its way out
		stop_once(i)
	elseif not plan.released[i] then
		push(plan, i)
	end
end

function S.shutdown_step(rt)
	settle(rt)
	local plan = rt.plan
	if plan.left > 0 or plan.nalive > 0 then return end
	-- Everything exited.  Pipes that a killed process held reach EOF at
	-- once; one held by a process nobody can identify (it left the group
	-- and scrubbed its environment) must not keep hum: wait at most 1 s.
	if raw.active() > 0 then
		raw.notify_idle()
		if not rt.drain_timer then
			rt.drain_timer = reactions.new_timer(1, 0, function()
				log("%d pipe(s) still open after every process exited; not waiting for them", raw.active())
				rt:finish(rt.exit_code or rt:outcome_code())
			end)
		end
		return
	end
	rt:finish(rt.exit_code or rt:outcome_code())
end

-- Stops everything and ends hum.  code: hum's exit status (nil: the
-- outcome, 1 when anything failed during the run, else 0).  opts.quiet:
-- hum ends by itself (no shutdown hooks); opts.now (SIGQUIT): stop every
-- process at once, each with its own grace, not in dependency order.
function S.shutdown(rt, code, opts)
	opts = opts or {}
	if rt.shutting then
		local plan = rt.plan
		if opts.now and plan.ordered then
			-- SIGQUIT during an ordered shutdown: whatever is left goes now
			plan.ordered = false
			for d in pairs(plan.waiting) do plan.waiting[d] = 0 end
			for _, i in ipairs(plan.all) do
				if not plan.released[i] then push(plan, i) end
			end
			rt:shutdown_step()
		end
		return
	end
	rt.shutting = true
	rt.exit_code = code
	for _, i in ipairs(rt.inst_list) do
		i.wanted = false
		-- never started: nothing to wait for, and nothing may start it now
		if i.state == "pending" and not i.starting and not (i.removing or i.removed) then raw.stop(i.id) end
	end
	plan_build(rt, not opts.now)
	if not opts.quiet then rt.run_list(rt.defs.hooks.shutdown, { code = code or rt:outcome_code() }) end
	rt:shutdown_step()
	if rt.finished then return end
	-- safety net: the supervisor's own grace timers end every process; this
	-- only guards against a bug leaving hum waiting forever
	local longest = 0
	for _, d in ipairs(rt.defs.list) do longest = math.max(longest, d.stop_spec.grace) end
	reactions.new_timer(longest * (#rt.inst_list + 1) + 10, 0, function()
		local left = {}
		for _, i in ipairs(rt.inst_list) do
			if alive(i) and #left < 20 then left[#left + 1] = ("%s (%s)"):format(i.name, i.state) end
		end
		log("shutdown took too long (still active: %s; %d with a live pid or open pipe); killing every process group",
			#left > 0 and table.concat(left, ", ") or "none", raw.active())
		raw.kill_all()
		local c = rt.exit_code
		rt:finish(c ~= nil and c ~= 0 and c or 1)
	end)
end

function S.shutting_down(rt) return rt.shutting end

-- Ends the loop with exit status `code` (once).
function S.finish(rt, code)
	if rt.finished then return end
	rt.finished = true
	raw.quit(code)
end

-- Signals to hum (README "Signals").  C leaves a signal that was ignored when
-- hum started ignored (nohup), suspends for SIGTSTP, and kills every group
-- on a second SIGINT or SIGQUIT; what the others mean is here.
local function stop_on(rt, ev, how)
	if rt.shutting and not how.now then return end
	if not rt.shutting then log("received SIG%s, %s", ev.signal, how.what) end
	-- 128+N while processes were running; otherwise the outcome
	local running = false
	for _, i in ipairs(rt.inst_list) do
		if alive(i) then running = true break end
	end
	rt:shutdown(running and 128 + ev.signo or nil, how)
end

-- A `hum ps` in hum's own output (SIGUSR2): every process that was started
-- or asked for, and how many were never started.
function S.report(rt)
	local quiet = 0
	log("processes (SIGUSR2):")
	for _, i in ipairs(rt.inst_list) do
		if i.state == "pending" and not i.wanted then
			quiet = quiet + 1
		elseif i.removing then
			log("  %-20s being removed (%s)", i.name, i.state)
		else
			local s = raw.status(i.id)
			local extra = ""
			if s.paused then extra = extra .. " paused" end
			log("  %-20s %-9s pid %-7s %s%s", i.name, s.state, s.pid ~= 0 and s.pid or "-", s.reason, extra)
		end
	end
	if quiet > 0 then log("  and %d not started", quiet) end
end

-- signal name -> handler(rt, ev)
S.signals = {
	INT = function(rt, ev) stop_on(rt, ev, { what = "stopping" }) end,
	TERM = function(rt, ev) stop_on(rt, ev, { what = "stopping" }) end,
	HUP = function(rt, ev) stop_on(rt, ev, { what = "stopping" }) end,
	QUIT = function(rt, ev) stop_on(rt, ev, { what = "stopping every process now", now = true }) end,
	USR1 = function(rt)
		log("received SIGUSR1: reopening log files")
		rt:notify("reopen")
	end,
	USR2 = function(rt) rt:report() end,
}

return S
