-- hum.reactions — reactions run as coroutines, timers, and the helpers that
-- may only be called inside a reaction (sleep, wait, exec).
--
-- Every reaction runs in its own coroutine, started from the dispatcher (the
-- one protected entry point C calls).  Its body runs under xpcall with a
-- traceback handler, so an error is reported with file:line and the
-- supervisor goes on; a reaction that fails `max_failures` times in a row,
-- or `window_failures` times within `window` seconds (one that fails every
-- other time never fails 5 times in a row), is disabled with a message.  A
-- helper that would block yields the coroutine; the watcher that completes
-- it (a timer, a state change, an exec) resumes it.
local raw = require "hum.raw"
local limits = require "hum.limits"

local M = {}

M.max_failures = 5
M.window_failures, M.window = 10, 60
M.log = function(msg) raw.log(msg) end

local owner = setmetatable({}, { __mode = "k" }) -- coroutine -> reaction
local timer_fns = {}                             -- timer id -> function

local function traceback(err)
	return debug.traceback(tostring(err), 2)
end

M.live = 0        -- reactions started and not finished (some may be suspended)
M.on_settled = nil -- called when the last live reaction finishes

-- What the engine knows of each reaction's runs (failures, fail_times,
-- disabled, memory_error), kept beside the reaction record rather than in
-- it: a reaction record belongs to the user's config (p.reactions,
-- hum.on), and the runtime never writes into the config.
local healths = setmetatable({}, { __mode = "k" })
local function health(r)
	local h = healths[r]
	if not h then
		h = { failures = 0 }
		healths[r] = h
	end
	return h
end

-- Whether reaction r was disabled after failing (it runs no more).
function M.disabled(r)
	local h = healths[r]
	return h ~= nil and h.disabled == true
end

local function disable(r, why)
	if health(r).disabled then return end
	health(r).disabled = true
	M.log(("reaction %s disabled %s"):format(r.label or "?", why))
end

-- Records a failure of r now; returns how many fell within the window (a
-- reaction is disabled at window_failures, so it keeps at most that many).
local function failed_in_window(r, now)
	local kept = {}
	for _, t in ipairs(health(r).fail_times or {}) do
		if t > now - M.window then kept[#kept + 1] = t end
	end
	kept[#kept + 1] = now
	health(r).fail_times = kept
	return #kept
end

local function finish(r, co, ok, err)
	owner[co] = nil
	M.live = M.live - 1
	if M.live == 0 and M.on_settled then M.on_settled() end
	local h = healths[r]
	if ok and not (h and h.memory_error) then
		if h then h.failures = 0 end
		return
	end
	health(r).failures = health(r).failures + 1
	if not ok then
		M.log(("reaction %s failed: %s"):format(r.label or "?", tostring(err)))
		-- the allocator refused it memory (lua/bind/memory.h)
		if not health(r).memory_error and tostring(err):find("not enough memory", 1, true) then
			health(r).memory_error = ("an allocation would have passed the limit of %d MiB"):format(
				select(2, raw.memory()) / 2 ^ 20)
		end
	end
	local recent = failed_in_window(r, raw.clock())
	if health(r).memory_error then
		-- Its data is garbage now: free it at once (and pace the
		-- collector for the smaller heap).  It would most likely do the
		-- same again, at the same cost to every other reaction.
		M.collect()
		disable(r, "after exceeding the Lua memory limit: " .. health(r).memory_error)
	elseif health(r).failures >= M.max_failures then
		disable(r, ("after %d consecutive failures"):format(health(r).failures))
	elseif recent >= M.window_failures then
		disable(r, ("after %d failures within %gs"):format(recent, M.window))
	end
end

-- Memory guard.  The Lua heap is limited (hum.limits { lua_memory }, or
-- HUM_LUA_MEMORY; lua/bind/memory.h): past the limit every allocation fails,
-- whoever makes it.  Reactions are stopped before that: when the heap holds
-- more than `memory_share` of the limit after a full collection, the
-- reaction that was running (the one that just grew it) is stopped with an
-- error naming the memory limit, and disabled.  It is checked in the hook
-- below, while a reaction runs, and after every resume, so a reaction that
-- allocates a little between sleeps is caught too.  A full collection costs
-- time in proportion to the heap, so it runs only once the heap has grown by
-- 1/64 of the limit since the last one found it over.
M.memory_share = 7 / 8
local checked_at = 0

-- A full collection; returns the live heap and the limit.  Garbage counts
-- until collected, and with the default pause (200%) the heap grows to twice
-- its live size before a cycle starts: the pause is set so that a heap near
-- the limit is collected in time, and back to 200% once it is small again.
function M.collect()
	collectgarbage()
	local used, limit = raw.memory()
	local bar = limit * M.memory_share
	collectgarbage("setpause", math.max(100, math.min(200, math.floor(100 * bar / math.max(used, 1)))))
	checked_at = used > bar and used or 0
	return used, limit
end

local function memory_over(used, limit)
	if used <= limit * M.memory_share or used < checked_at + limit / 64 then return nil end
	used, limit = M.collect()
	if used <= limit * M.memory_share then return nil end
	return ("the Lua heap holds %d MiB after a full collection, more than %g%% of its %d MiB limit " ..
		"(hum.limits { lua_memory = ... } or HUM_LUA_MEMORY)"):format(used / 2 ^ 20,
		M.memory_share * 100, limit / 2 ^ 20)
end

-- Resumed into a suspended reaction to stop it: the helper it waits in
-- raises the message that comes with it (see yield), so the reaction
-- unwinds, its memory becomes garbage and its error is reported.
local STOP = {}
local function unless_stopped(a, b, ...)
	if a == STOP then error(b, 0) end
	return a, b, ...
end
-- What helpers yield with: coroutine.yield, except for a reaction stopped
-- while it waits.
local function yield(...)
	return unless_stopped(coroutine.yield(...))
end
M.yield = yield

-- Runaway guard: while a reaction runs, a count hook checks the time every
-- few thousand VM instructions and raises an error once it has run for
-- `runaway_limit` seconds without yielding.  LuaJIT's compiled traces do not
-- check hooks, so the config file's functions run with the JIT off (see
-- hum.config); code in modules a config requires stays compiled, and a tight
-- loop there is only reported once it returns (the memory limit still holds
-- there: the allocator enforces it).  The same hook checks the memory guard
-- and lets C publish the world snapshot if it has waited (raw.guard).
M.runaway_limit = tonumber(os.getenv("HUM_REACTION_LIMIT") or "") or 5
local deadline
local function guard_hook()
	local now, used, limit = raw.guard()
	if deadline and now > deadline then
		deadline = nil
		error(("runaway reaction: ran for more than %gs without yielding"):format(M.runaway_limit), 2)
	end
	local over = memory_over(used, limit)
	if over then
		local r = owner[coroutine.running()]
		if r then health(r).memory_error = over end
		-- no position: the instruction the hook stopped at may be
		-- anywhere (a metamethod, a helper); the traceback names the line
		error("memory limit: " .. over, 0)
	end
end

-- Resumes co with the given values and handles its end.
local function resume(co, ...)
	local r = owner[co]
	local outer = deadline
	deadline = raw.clock() + M.runaway_limit
	debug.sethook(co, guard_hook, "", 1000)
	local ok, a, b = coroutine.resume(co, ...)
	deadline = outer
	if not outer then debug.sethook(co) end
	if not ok then
		-- only reachable if the wrapper itself failed (out of memory)
		if r then finish(r, co, false, a) end
		return
	end
	local over = r and not health(r).memory_error and memory_over(raw.memory())
	if over then
		health(r).memory_error = over
		if coroutine.status(co) == "suspended" then
			return resume(co, STOP, "memory limit: " .. over)
		end
	end
	if coroutine.status(co) == "dead" and r then
		finish(r, co, a, b)
	end
end
M.resume = resume

-- Runs reaction r = { fn =, label = } with arguments, as a new coroutine.
function M.run(r, ...)
	if M.disabled(r) then return end
	local fn = r.fn
	local co = coroutine.create(function(...)
		return xpcall(fn, traceback, ...)
	end)
	owner[co] = r
	M.live = M.live + 1
	resume(co, ...)
end

-- The calling reaction's coroutine, or an error naming the helper.
local function current(helper)
	local co = coroutine.running()
	if not co or not owner[co] then
		error(("%s can only be called inside a reaction (a callback run by hum); " ..
			"outside one, use hum.after or a reaction"):format(helper), 3)
	end
	return co
end
M.current = current

function M.in_reaction()
	local co = coroutine.running()
	return co ~= nil and owner[co] ~= nil
end

-- Timers --------------------------------------------------------------------
local repeating = {}

-- One-shot timers are forgotten before their function runs, so the function
-- may start a new timer that reuses the id.
function M.on_timer(id)
	local fn = timer_fns[id]
	if not repeating[id] then timer_fns[id] = nil end
	if fn then fn(id) end
end

local function new_timer(after, every, fn)
	local id = raw.timer(after, every)
	timer_fns[id] = fn
	repeating[id] = every > 0 or nil
	return id
end
M.new_timer = new_timer

local function cancel_timer(id)
	raw.timer_stop(id)
	timer_fns[id] = nil
	repeating[id] = nil
end
M.cancel_timer = cancel_timer

function M.sleep(s)
	limits.need(s, "hum.sleep", 2, "hum.sleep: the delay")
	local co = current("hum.sleep")
	new_timer(s, 0, function() resume(co) end)
	return yield()
end

local Handle = {}
Handle.__index = Handle
function Handle:cancel()
	self.cancelled = true
	if self.id then
		cancel_timer(self.id)
		self.id = nil
	end
end
function Handle:active() return not self.cancelled and (self.id ~= nil or not M.running) end

-- Timers made while the config loads start with the supervisor (M.start).
local deferred = {}
M.running = false

function M.start()
	M.running = true
	for _, f in ipairs(deferred) do f() end
	deferred = {}
end

local function timer_handle(after, every, fn, name)
	limits.need(after, name, 3, name .. (every and ": the interval" or ": the delay"))
	if type(fn) ~= "function" then error(name .. ": expected a function", 3) end
	local h = setmetatable({}, Handle)
	local r = { fn = fn, label = ("%s at %s"):format(name, (function()
		local i = debug.getinfo(4, "Sl")
		return i and ("%s:%d"):format(i.short_src, i.currentline) or "?"
	end)()) }
	local function arm()
		if h.cancelled then return end
		h.id = new_timer(after, every or 0, function()
			if not every then h.id = nil end
			M.run(r, h)
			if M.disabled(r) and h.id then h:cancel() end
		end)
	end
	if M.running then arm() else deferred[#deferred + 1] = arm end
	return h
end

-- Not tail calls: the label names the caller's line, four levels up.
function M.after(s, fn)
	local h = timer_handle(s, nil, fn, "hum.after")
	return h
end
function M.every(s, fn)
	local h = timer_handle(s, s, fn, "hum.every")
	return h
end

-- Waiting for a condition: waiters[key] = { {co=, timer=}, ... } -------------
local waiters = {}

-- Suspends the current reaction until one of keys is woken or the timeout.
-- Returns the key woken and what wake passed, or nil, "timeout".
function M.wait_any(keys, timeout, helper)
	local co = current(helper)
	local w = { co = co, keys = keys }
	for _, key in ipairs(keys) do
		local list = waiters[key]
		if not list then
			list = {}
			waiters[key] = list
		end
		list[#list + 1] = w
	end
	if timeout then
		w.timer = new_timer(timeout, 0, function()
			w.timer = nil
			M.unwait(w)
			resume(co, nil, "timeout")
		end)
	end
	return yield()
end

-- Removes waiter w from the lists of all its keys.
function M.unwait(w)
	for _, key in ipairs(w.keys) do
		local list = waiters[key]
		if list then
			for i, x in ipairs(list) do
				if x == w then table.remove(list, i) break end
			end
			if not list[1] then waiters[key] = nil end
		end
	end
end

function M.wake(key, ...)
	local list = waiters[key]
	if not list then return end
	waiters[key] = nil
	for _, w in ipairs(list) do
		if w.timer then cancel_timer(w.timer) end
		-- woken once: its other keys forget it
		M.unwait(w)
		resume(w.co, key, ...)
	end
end

-- Suspends the current reaction until M.wake(key, ...) or the timeout.
-- Returns what wake passed, or nil, "timeout".
local function drop_key(k, ...)
	if k == nil then return nil, ... end
	return ...
end
function M.wait_for(key, timeout, helper)
	return drop_key(M.wait_any({ key }, timeout, helper))
end

function M.has_waiters(key) return waiters[key] ~= nil end

return M
