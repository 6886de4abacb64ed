-- hum.runtime — the running environment, as one object per config
-- generation: the instances of that generation's definitions, dependency
-- gating and readiness (hum.runtime.gate), registration with the
-- supervisor (hum.runtime.register), reactions on events
-- (hum.runtime.events), ordered shutdown and signals
-- (hum.runtime.shutdown), and users' commands (hum.runtime.commands).
--
-- C publishes every state change; the dispatcher (raw.set_dispatch) hands
-- each event to the current generation, which decides what follows.  Lua
-- keeps ids, C keeps processes.  A generation never writes into the
-- definitions it was made from (they are the user's config, and the next
-- generation of live reload compares them: raw.spec_equal); what it knows
-- of each process lives in its instance tables (i.rt is the generation).
--
-- What outlives a generation is the session: the loop (M.run), listeners
-- registered with M.listen (the control socket, the log file), and
-- M.current, the generation events go to.  Listeners registered with
-- rt:listen belong to that generation and go with rt:retire().
local raw = require "hum.raw"
local define = require "hum.define"
local reactions = require "hum.reactions"

local M = {}

local Runtime = {}
Runtime.__index = Runtime
M.Runtime = Runtime
for _, part in ipairs { "gate", "register", "events", "shutdown", "commands" } do
	for k, v in pairs(require("hum.runtime." .. part)) do
		assert(Runtime[k] == nil, "hum.runtime: two parts define " .. k)
		Runtime[k] = v
	end
end

M.ACTIVE, M.FINAL = Runtime.ACTIVE, Runtime.FINAL
M.current = nil -- the generation events go to (nil before boot)

-- Listeners ---------------------------------------------------------------------
-- What other modules hook into, as lists called in the order they were
-- added (listen returns a handle with :off()); nothing is a single slot
-- that a second user would overwrite:
--   idle()           nothing can make progress; a listener that returns
--                    true has decided what happens (keep running, shut
--                    down); when none does, hum finishes with the outcome
--   state(i, new, old)  after each state event of an instance
--   command(id, req) a control-socket request; true when handled
--   gate(i, ok, why) i's "may start" changed: true (open), nil (not yet),
--                    false (can never hold without a user's command)
--   removed(i)       i was retired (rt:remove); its id names nothing now
--   retire(rt)       the generation is being retired (newest first)
--   teardown()       once the loop has returned (M.run), newest first: the
--                    API thread must stop before the supervisor is freed
--   reopen()         SIGUSR1: log files should be reopened (rotation)
-- A listener registered with M.listen belongs to the session and hears
-- every generation; one registered with rt:listen hears rt only, and is
-- dropped when rt is retired.
local KINDS = { idle = true, state = true, command = true, gate = true, removed = true,
	retire = true, teardown = true, reopen = true }
local lists = {}
for k in pairs(KINDS) do lists[k] = {} end

local Listener = {}
Listener.__index = Listener
function Listener:off()
	self.removed = true -- takes effect at once, even for the event being delivered
	local list = lists[self.kind]
	for k, l in ipairs(list) do
		if l == self then table.remove(list, k) return true end
	end
	return false
end

local function add_listener(kind, fn, owner)
	if not KINDS[kind] then error(("unknown listener kind %q"):format(tostring(kind)), 3) end
	local l = setmetatable({ kind = kind, fn = fn, owner = owner }, Listener)
	local list = lists[kind]
	list[#list + 1] = l
	return l
end

-- A session listener (see above).
function M.listen(kind, fn) return add_listener(kind, fn, nil) end
-- A listener of this generation only.
function Runtime.listen(rt, kind, fn) return add_listener(kind, fn, rt) end

-- The listeners of kind that rt hears, as a copy (a listener may add or
-- remove listeners while they are called; one switched off meanwhile is
-- skipped: call()).
local NONE = {}
local function heard(rt, kind)
	local list = lists[kind]
	if not list[1] then return NONE end -- (most kinds, most of the time)
	local out = {}
	for _, l in ipairs(list) do
		if l.owner == nil or l.owner == rt then out[#out + 1] = l end
	end
	return out
end

-- Calls one listener, protected: a listener's error (a plugin's, a
-- config's) is reported with its traceback and the others still run, as
-- with reactions; what called it (gating, shutdown) goes on.  Returns what
-- it returned, or nil when it failed.
local function call(l, ...)
	if l.removed then return nil end
	local ok, res = xpcall(l.fn, debug.traceback, ...)
	if ok then return res end
	raw.log(("%s listener failed: %s"):format(l.kind, tostring(res)))
	return nil
end

-- Calls kind's listeners in order until one returns true; returns whether
-- one did.
function Runtime.claim(rt, kind, ...)
	for _, l in ipairs(heard(rt, kind)) do
		if call(l, ...) then return true end
	end
	return false
end

function Runtime.notify(rt, kind, ...)
	for _, l in ipairs(heard(rt, kind)) do call(l, ...) end
end

-- Generations -------------------------------------------------------------------
-- A new generation of `defs` (hum.define's table: list, env, hooks), with
-- relative cwds resolved against base_dir.  Nothing is registered yet
-- (rt:register_all), and it receives no events until it is M.current.
function M.new(defs, base_dir)
	local heap = require "hum.runtime.heap"
	return setmetatable({
		defs = defs, base_dir = base_dir,
		inst = {},        -- C id -> instance
		inst_list = {},   -- in registration order
		by_name = {},     -- instance name -> instance
		of_def = setmetatable({}, { __mode = "k" }), -- definition -> its instances
		base_envs = {},
		-- gating (hum.runtime.gate)
		startable = heap.new(), -- candidates whose gate is open
		slot_wait = heap.new(), -- tasks whose gate is open, waiting for a job slot
		active = {}, waiting = {}, unready = {}, -- lazily cleaned sets (events.lua)
		jobs_running = 0,
		jobs = nil,       -- maximum concurrently running tasks (hum run); nil = no limit
		gq = {}, gqueued = {}, gsettling = false,
		-- events
		dispatching = false, settled = false,
		failed_any = false, all_ready_fired = false,
		-- shutdown
		shutting = false, exit_code = nil, plan = nil, finished = false, drain_timer = nil,
	}, Runtime)
end

-- Retires generation rt: its retire listeners run (newest first, each
-- protected), then every listener it owns is dropped.  Its processes are
-- not touched: whoever retires a generation decides which of them the next
-- one keeps (raw.spec_equal) and removes the others (rt:remove).  The
-- current generation cannot be retired (signals, `hum down` and every
-- event would reach nobody): make the next one current first
-- (runtime.make_current).
function Runtime.retire(rt)
	if M.current == rt then
		error("rt:retire: this is the current generation; make another current first (runtime.make_current)", 2)
	end
	if rt.retired then return end
	local mine = heard(rt, "retire")
	for k = #mine, 1, -1 do call(mine[k], rt) end
	for _, list in pairs(lists) do
		for k = #list, 1, -1 do
			if list[k].owner == rt then table.remove(list, k) end
		end
	end
	rt.retired = true
end

-- Makes rt the generation events go to (live reload: once the next
-- generation has taken over the processes it keeps).  Returns the one it
-- replaces, for the caller to retire.
function M.make_current(rt)
	if getmetatable(rt) ~= Runtime or rt.retired then
		error("runtime.make_current: expected a generation that is not retired", 2)
	end
	local old = M.current
	M.current = rt
	return old
end

-- C calls this for every event; the current generation handles it.
local function dispatch(ev)
	local rt = M.current
	if rt then return rt:dispatch(ev) end
end

-- The last live reaction finished (the reaction engine is one per Lua state).
reactions.on_settled = function()
	local rt = M.current
	if rt then rt:reactions_settled() end
end

-- Starts the supervisor and makes the first generation from hum.define's
-- definitions, every process registered and none running yet.  Returns it.
-- The foreground printer's name column fits the longest name from the start.
function M.boot(base_dir)
	raw.init()
	local defs = define.defs
	local width = 0
	for _, p in ipairs(defs.list) do
		width = math.max(width, #p.name + (p.scale > 1 and #tostring(p.scale) + 1 or 0))
	end
	raw.output(1, width)
	require("hum.messages").attach()
	raw.set_dispatch(dispatch)
	local rt = M.new(defs, base_dir)
	M.current = rt
	rt:register_all()
	reactions.start()
	return rt
end

-- Runs the loop until hum finishes, then the teardown listeners (newest
-- first, each protected: one failing does not skip the others).  Returns
-- the exit code.
function M.run()
	local ok, code = pcall(raw.run)
	-- the session's and the last generation's (one never current has
	-- nothing to tear down)
	local list = M.current and heard(M.current, "teardown") or heard(nil, "teardown")
	for k = #list, 1, -1 do
		local okt, err = pcall(list[k].fn)
		if not okt then io.stderr:write("hum: teardown: ", tostring(err), "\n") end
	end
	if not ok then error(code, 0) end
	return code
end

-- The current generation's view, for callers that hold no generation (the
-- hum module, the control socket).  Functions given an instance act on the
-- instance's own generation (i.rt).
local function cur() return M.current end

function M.instances(p)
	local rt = cur()
	if rt then return rt:instances(p) end
	return p.instances and Runtime.live(p.instances) or {}
end
function M.select(sel)
	local rt = cur()
	if not rt then return {}, nil end
	return rt:select(sel)
end
-- The current generation's instance registered as `name` (nil: none).
function M.find(name)
	local rt = cur()
	return rt and rt.by_name[name]
end
function M.select_defs(sel) return Runtime.select_defs(define.defs, sel) end
function M.shutdown(code, opts) local rt = cur() if rt then return rt:shutdown(code, opts) end end
function M.shutting_down() local rt = cur() return rt ~= nil and rt.shutting end
function M.evaluate() local rt = cur() if rt then return rt:evaluate() end end
function M.outcome_code() local rt = cur() return rt and rt:outcome_code() or 0 end
function M.watch_lines(p) local rt = cur() if rt then return rt:watch_lines(p) end end
M.ready_now = Runtime.ready_now
M.gone = Runtime.gone
M.manual_reason = Runtime.manual_reason
function M.want(i) return i.rt:want(i) end
function M.gate(i) return i.rt:gate(i) end
function M.changed(i) return i.rt:changed(i) end
function M.line_interest(i, armed) return i.rt:line_interest(i, armed) end
function M.start_instance(i) return i.rt:start_instance(i) end
function M.stop_instance(i) return i.rt:stop_instance(i) end
function M.restart_instance(i) return i.rt:restart_instance(i) end
function M.remove(i) return i.rt:remove(i) end

return M
