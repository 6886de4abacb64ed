-- hum.runtime.commands — a user's commands on a runtime generation's
-- instances (start, stop, restart, remove: from hum.start, p:stop(), the
-- control socket), and selection: which instances a selector names.
-- Methods of the runtime object.
local raw = require "hum.raw"
local register = require "hum.runtime.register"

local C = {}

local FINAL = { stopped = true, succeeded = true, failed = true }

-- What a selector selects is defined once, in C (core/state/select.h): a
-- glob matched against a process's name, its replica base and its groups.
-- The control socket's reads (hum status, hum logs) call the same function,
-- so every command selects the same processes.  Both functions return a list
-- (empty when nothing matches) and, when the selector itself is refused (too
-- long, a [ without ], ...), an empty list and the message.

-- A selector -> the registered instances it selects, in registration order.
function C.select(rt, sel)
	local ids, err = raw.select(sel)
	local out = {}
	for _, id in ipairs(ids or {}) do
		local i = rt.inst[id]
		if i then out[#out + 1] = i end
	end
	return out, err
end

-- A selector -> the definitions of `defs` with an instance it selects,
-- before anything is registered (`hum up NAME` chooses before it may fork
-- into the background): the same C test, on the name, groups and base each
-- instance will be registered with.  Not a method: no generation exists yet.
function C.select_defs(defs, sel)
	local out = {}
	for _, p in ipairs(defs.list) do
		local groups = table.concat(p.groups, ",")
		for r = 1, p.scale do
			local name, base = register.instance_name(p, r)
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
local function revive(rt, i)
	i.restart_wanted = true
	i.state = "pending"
	i.reason = nil
	i.starting = false
	rt:touch(i) -- it is about to move: what waited for it waits again
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
local function rerun(rt, x, over)
	local s = raw.state(x.id)
	if over[s] then
		revive(rt, x)
	elseif s == "stopping" then
		x.restarting = true
		raw.start(x.id)
	end
end

function C.start_instance(rt, i)
	if rt.gone(i) then return end
	rerun(rt, i, FINAL)
	local seen, stack = { [i] = true }, { i }
	while #stack > 0 do
		local x = stack[#stack]
		stack[#stack] = nil
		rt:mark_wanted(x)
		for _, e in ipairs(x.deps) do
			local di = e.di
			if not seen[di] and not rt.gone(di) then
				seen[di] = true
				rerun(rt, di, AGAIN)
				stack[#stack + 1] = di
			end
		end
	end
	rt:evaluate()
end

-- An explicit restart (p:restart(), hum.restart, `hum restart`): a live
-- run is stopped and C starts the next one once it is over — through the
-- start gate, so with a dependency not ready the new run waits `pending`.
-- Anything not live is started as by start_instance.
function C.restart_instance(rt, i)
	if rt.gone(i) then return end
	rt:want(i)
	if FINAL[i.state] or i.state == "pending" then return rt:start_instance(i) end
	i.restarting = true
	raw.restart(i.id)
end

-- An explicit stop: no longer wanted, so nothing starts it again by itself.
function C.stop_instance(rt, i)
	if rt.gone(i) then return end -- being stopped already
	rt:unwant(i)
	raw.stop(i.id)
end

return C
