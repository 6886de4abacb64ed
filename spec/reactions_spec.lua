-- Reactions: line reactions with captures and streams, errors in a
-- reaction (reported with a traceback, disabled after 5 in a row), runaway
-- reactions, hooks for every process, timers, and the handles that cancel
-- them.
local S = require "support.hum"
local run = require "support.scenario".run

local scenario = S.scenario
local count = S.count

describe("reactions", function()
	it("runs line reactions only on matching lines, with captures and the stream", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo 'user=ann id=7'; echo 'nothing'; echo 'user=bob id=9' >&2" }
t:on("line", "user=(%a+) id=(%d+)", function(ev, user, id) rec("match", user, id, ev.stream, ev.captures[2]) end)
t:on("line", { "user", stream = "err" }, function(ev) rec("err-only", ev.line) end)
]]
		assert.are.equal(0, code, out)
		assert.matches("match ann 7 out 7", r)
		assert.matches("match bob 9 err 9", r)
		assert.matches("err%-only user=bob id=9", r)
		assert.is_nil(r:find("nothing"))
		assert.is_nil(r:find("err%-only user=ann"))
	end)

	it("keeps supervising after an error in a reaction, with a traceback naming file:line", function()
		local file, _, results = scenario [[
local t = hum.task "t" { cmd = "echo one; echo two" }
t:on("line", "one", function() error("boom in reaction") end)
t:on("line", "two", function() rec("still", "running") end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("hum%.lua:%d+: boom in reaction", out)
		assert.matches("stack traceback", out)
		assert.matches("still running", S.read(results))
	end)

	it("disables a reaction after 5 consecutive failures", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "for i in 1 2 3 4 5 6 7 8; do echo tick $i; done" }
t:on("line", "tick (%d)", function(ev, n) rec("ran", n) error("fail " .. n) end)
]]
		assert.are.equal(0, code, out)
		local runs = 0
		for _ in r:gmatch("ran %d") do runs = runs + 1 end
		assert.are.equal(5, runs)
		assert.matches("disabled after 5 consecutive failures", out)
	end)

	it("interrupts a runaway reaction and keeps supervising (JIT on)", function()
		local code, out, r = run([[
assert(jit.status(), "the JIT must be on for this test")
local t = hum.task "t" { cmd = "echo first; sleep 0.5; echo second" }
t:on("line", "first", function()
	local x = 0
	while true do x = x + 1 end
end)
t:on("line", "second", function() rec("second", "seen") end)
]], {}, { env = { HUM_REACTION_LIMIT = "1" } })
		assert.are.equal(0, code, out)
		assert.matches("runaway reaction: ran for more than 1s without yielding", out)
		assert.matches("second seen", r)
	end)
end)

describe("hooks for every process", function()
	it("runs hum.on(\"start\") and hum.on(\"state\") for every process, in order", function()
		local code, out, r = run [[
hum.task "a" { cmd = "true" }
hum.task "b" { cmd = "exit 3" }
hum.on("start", function(ev) rec("start", ev.name, ev.pid > 0, ev.restarts) end)
hum.on("state", function(ev) rec("state", ev.name, ev.old, ev.state) end)
]]
		assert.are.equal(1, code, out)
		assert.matches("start a true 0\n", r)
		-- "state" fires on changes only, from the first start to the exit
		assert.matches("start b true 0\n", r)
		local seq = {}
		for name, old, new in r:gmatch("state (%a) (%a+) (%a+)\n") do
			seq[name] = (seq[name] and seq[name] .. " " or "") .. old .. ">" .. new
		end
		assert.are.equal("pending>running running>ready ready>succeeded", seq.a)
		assert.are.equal("pending>running running>ready ready>failed", seq.b)
	end)

	it("runs hum.on(\"shutdown\") with the exit code, for hum.shutdown and for SIGTERM", function()
		local code, out, r = run [[
hum.service "s" { cmd = "sleep 100" }
hum.on("shutdown", function(ev) rec("shutdown", ev.code) end)
hum.on("ready", function() hum.shutdown(3) end)
]]
		assert.are.equal(3, code, out)
		assert.are.equal("shutdown 3\n", r)

		local file, dir, results = S.scenario [[
local s = hum.service "s" { cmd = "sleep 100" }
hum.on("shutdown", function(ev) rec("shutdown", ev.code, s:status().state) end)
hum.on("ready", function() rec("ready") end)
]]
		local h = S.start({ "up", "-f", file }, { dir = dir })
		finally(function() h:close() end)
		S.wait(function() return (S.read(results) or ""):find("ready") end, 30, "s ready")
		h:signal("TERM")
		assert.are.equal(143, h:wait_exit(30))
		-- the hook runs when the shutdown begins, before anything is stopped
		assert.matches("shutdown 143 ready\n", S.read(results))
	end)
end)

describe("handles", function()
	it("stops a reaction after :off(), without skipping the reactions after it", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo tick 1; echo tick 2; echo tick 3" }
local once
once = t:on("line", "tick (%d)", function(ev, n) rec("once", n, once:off(), once:off()) end)
t:on("line", "tick (%d)", function(ev, n) rec("every", n) end)
local hook = hum.on("exit", function(ev) rec("hook", ev.name) end)
rec("hook-off", hook:off())
]]
		assert.are.equal(0, code, out)
		assert.matches("once 1 true false\n", r)
		assert.are.equal(1, count(r, "once"))
		assert.are.equal(3, count(r, "every %d"))
		assert.matches("every 1\nevery 2\nevery 3\n", r)
		assert.is_nil(r:find("hook t"))
		assert.matches("hook%-off true\n", r)
	end)

	it("reports timers as active until they fire or are cancelled", function()
		local code, out, r = run [[
local early_fired = false
local early = hum.after(0, function() early_fired = true end)
rec("load", early:active())
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	eventually(function() return early_fired end, "early timer")
	rec("early-after-firing", early:active())
	local fired = false
	local once = hum.after(0.05, function(h) fired = true rec("inside", h:active()) end)
	rec("after-before", once:active())
	eventually(function() return fired end, "one-shot")
	rec("after-fired", once:active())
	local long = hum.after(3600, function() rec("long fired") end)
	rec("long", long:active())
	long:cancel()
	rec("long-cancelled", long:active())
	local n = 0
	local ev = hum.every(0.02, function(h) n = n + 1 end)
	eventually(function() return n >= 3 end, "every")
	rec("every-running", ev:active())
	ev:cancel()
	rec("every-cancelled", ev:active())
	local before = n
	-- a cancelled repeating timer never runs again: wait out several periods
	local probe = false
	hum.after(0.2, function() probe = true end)
	eventually(function() return probe end, "later timer")
	rec("every-stopped", n == before)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("load true\n", r)
		assert.matches("early%-after%-firing false\n", r)
		assert.matches("after%-before true\ninside false\nafter%-fired false\n", r)
		assert.matches("long true\nlong%-cancelled false\n", r)
		assert.matches("every%-running true\nevery%-cancelled false\n", r)
		assert.matches("every%-stopped true\n", r)
		assert.is_nil(r:find("long fired"))
		assert.is_nil(r:find("gave%-up"))
	end)

	it("runs each timer's own function when several expire in one loop iteration", function()
		-- A is made before B but expires after it; the reaction keeps the
		-- loop busy until both (and the first sleep) have expired, so their
		-- events are queued together and a timer made while one is handled
		-- must not take the id of one whose event is still queued
		local code, out, r = run [[
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	local a_fired = false
	hum.after(0.2, function() a_fired = true rec("A") end)
	hum.after(0.1, function() rec("B") hum.after(60, function() rec("C") end) end)
	local t0 = hum.clock()
	while hum.clock() - t0 < 0.4 do end
	while not a_fired and hum.clock() - t0 < 10 do
		local s0 = hum.clock()
		hum.sleep(0.05)
		if hum.clock() - s0 < 0.045 then rec("short sleep", hum.clock() - s0) end
	end
	rec("done", a_fired)
end)
]]
		assert.are.equal(0, code, out)
		assert.are.equal("B\nA\ndone true\n", r)
	end)
end)
