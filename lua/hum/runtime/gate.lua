-- hum.runtime.gate — the start side of a runtime generation: dependency
-- gating, wanting, and starting in definition order.  Methods of the
-- runtime object (hum.runtime); every piece of state is the object's or its
-- instances', none is module-level.
--
-- The rules, each defined once here and used by every consumer (README,
-- "Lifecycle rules"):
--
--   ready now   an instance is ready while its published state is `ready`
--               (ready_now): stopping, stopped, backoff and failed never
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
--               command (its process failed, was stopped or removed, exited
--               without becoming ready, gave up its readiness probe, or
--               waits itself for something that can never happen):
--               i.gate == false, and i.cause names the root ("db failed").
--               Those who wait for it show "X cannot start: <root>";
--               nothing is retried, but a user's start of the dependency
--               reopens everything (its state changes, so its dependents are
--               examined again).
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
local raw = require "hum.raw"
local heap = require "hum.runtime.heap"

local G = {}

local FINAL = { stopped = true, succeeded = true, failed = true }

-- Removal was asked for (rt:remove): the instance is on its way out, and
-- C may have retired it already; nothing starts or waits for it any more.
function G.gone(i) return i.removing or i.removed end
local gone = G.gone

function G.ready_now(i)
	if gone(i) then return false end
	return raw.state(i.id) == "ready"
end
local ready_now = G.ready_now

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
-- failure says whether the root is a failure rather than a user's stop or
-- removal); or nil, why.
local function edge(di, cond)
	if gone(di) then
		local never = di.name .. " was removed"
		return false, never, never, false
	end
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
function G.link(rt, i)
	i.deps = {}
	for _, d in ipairs(i.def.after) do
		for _, di in ipairs(rt:instances(d.proc)) do
			i.deps[#i.deps + 1] = { di = di, cond = d.cond }
			di.rdeps[#di.rdeps + 1] = i
		end
	end
end

-- Wanted and waiting to be started: pending, or finished and asked to run
-- again (revived), and not being started already.
function G.candidate(i)
	return i.wanted and not i.starting and not gone(i)
		and (i.state == "pending" or (FINAL[i.state] and i.restart_wanted))
end
local candidate = G.candidate

local function show_wait(i, why)
	if i.reason ~= why then
		i.reason = why
		raw.set_pending(i.id, why)
	end
end

-- i may have become startable, or its reason for waiting may have changed.
function G.consider(rt, i)
	if not candidate(i) then return end
	rt.waiting[i] = true
	if i.gate == true then
		heap.push(rt.startable, i)
	else
		show_wait(i, i.gate_why)
	end
end

-- Re-examines i's gate; returns whether it changed in a way that matters
-- to i's dependents (open/closed/never, or the root cause).
function G.refresh(rt, i)
	local ok, why, cause, failure = gate_of(i)
	local was, was_cause, was_failure = i.gate, i.cause, i.cause_failure
	if ok == was and why == i.gate_why and cause == was_cause and failure == i.cause_failure then
		return false
	end
	i.gate, i.gate_why, i.cause, i.cause_failure = ok, why, cause, failure
	if not gone(i) then raw.set_gate(i.id, ok ~= true and why or nil) end
	if ok == false and was ~= false and candidate(i) and why == cause then
		-- the first of a chain (its dependents carry the reason without a line each)
		raw.log(("%s cannot start: %s"):format(i.name, why))
	end
	rt:notify("gate", i, ok, why)
	rt:consider(i)
	return ok ~= was or cause ~= was_cause or failure ~= was_failure
end

-- Work queue: dependents of what changed.  Never re-entered: a listener
-- that causes more changes adds to the queue being processed.
function G.touch(rt, i)
	local q, queued = rt.gq, rt.gqueued
	for _, j in ipairs(i.rdeps) do
		if not queued[j] then
			queued[j] = true
			q[#q + 1] = j
		end
	end
end

local function drain(rt)
	local q, queued = rt.gq, rt.gqueued
	local k = 1
	while q[k] do
		local j = q[k]
		q[k] = nil
		queued[j] = nil
		k = k + 1
		if rt:refresh(j) then rt:touch(j) end
	end
end

function G.settle_gates(rt)
	if rt.gsettling or not rt.gq[1] then return end -- (most events queue nothing)
	rt.gsettling = true
	-- an error must not leave the queue closed for good
	local ok, err = pcall(drain, rt)
	rt.gsettling = false
	if not ok then error(err, 0) end
end

-- i changed in a way its dependents may care about (a probe gave up).
function G.changed(rt, i)
	rt:touch(i)
	rt:evaluate()
end

-- i's gate: true, or false/nil, with the reason and the root cause.
function G.gate(rt, i) return i.gate, i.gate_why, i.cause end

function G.mark_wanted(rt, i)
	if gone(i) then return end
	if not i.wanted then
		i.wanted = true
		rt.unready[i] = true
	end
	rt:consider(i)
end

-- Marks i and, transitively, its dependencies as wanted (an explicit stack:
-- a chain of any length).  A removed dependency stays unwanted: what waits
-- for it cannot start ("X was removed").
function G.want(rt, i)
	if i.wanted or gone(i) then return end
	local stack = { i }
	while #stack > 0 do
		local x = stack[#stack]
		stack[#stack] = nil
		if not x.wanted then
			rt:mark_wanted(x)
			for _, e in ipairs(x.deps) do
				if not e.di.wanted and not gone(e.di) then stack[#stack + 1] = e.di end
			end
		end
	end
end

function G.unwant(rt, i)
	i.wanted = false
	i.restart_wanted, i.restarting = nil, nil
end

local function start(rt, i)
	i.starting = true
	i.restart_wanted = nil
	rt.active[i] = true
	if i.def.kind == "task" and not i.job then
		i.job = true
		rt.jobs_running = rt.jobs_running + 1
	end
	-- a spawn error is published as `failed` (and logged by the supervisor
	-- with its reason): nothing to add
	raw.start(i.id)
end

local function slot_free(rt) return not rt.jobs or rt.jobs_running < rt.jobs end

-- Starts every wanted instance whose gate is open, in definition order
-- (tasks within the job limit of `hum run`, rt.jobs).
function G.evaluate(rt)
	rt:settle_gates()
	if rt.shutting then return end
	local slot_wait, startable = rt.slot_wait, rt.startable
	while slot_wait.n > 0 and slot_free(rt) do
		local i = heap.pop(slot_wait)
		if candidate(i) and i.gate == true then start(rt, i) end
	end
	while startable.n > 0 do
		local i = heap.pop(startable)
		if candidate(i) and i.gate == true then
			if i.def.kind == "task" and not i.job and not slot_free(rt) then
				heap.push(slot_wait, i)
				show_wait(i, "waiting for a job slot")
			else
				start(rt, i)
			end
		end
	end
end

return G
