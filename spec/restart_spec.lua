-- Restarting: restart policies with backoff and max, cancelling a pending
-- restart, restart.reset, and restarting a running process.
local S = require "support.hum"
local scenario_run = require "support.scenario".run

local scenario = S.scenario
local lines = S.file_lines

describe("hum up", function()
	it("restarts on failure with backoff, counting restarts, and stops at max", function()
		local file, _, results = scenario [[
local f = hum.service "f" { cmd = "exit 1", restart = { policy = "on-failure", max = 3, backoff = { 0.2, 0.8 } } }
f:on("start", function(ev) rec("start", ev.restarts, hum.clock()) end)
f:on("exit", function(ev) rec("exit", ev.state, ev.restarts) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(1, code, out)
		local starts, exits = {}, {}
		for _, l in ipairs(lines(results)) do
			local n, t = l:match("^start (%d+) (%S+)")
			if n then starts[#starts + 1] = { tonumber(n), tonumber(t) } end
			local st = l:match("^exit (%S+)")
			if st then exits[#exits + 1] = st end
		end
		assert.are.equal(4, #starts)
		for k = 1, 4 do assert.are.equal(k - 1, starts[k][1]) end
		-- backoff doubles: >= 0.2, 0.4, 0.8 between starts
		assert.is_true(starts[2][2] - starts[1][2] >= 0.18)
		assert.is_true(starts[3][2] - starts[2][2] >= 0.38)
		assert.is_true(starts[4][2] - starts[3][2] >= 0.75)
		assert.are.same({ "backoff", "backoff", "backoff", "failed" }, exits)
	end)

	it("cancels a pending restart when stopped during backoff", function()
		local file, _, results = scenario [[
local f = hum.service "f" { cmd = "exit 1", restart = { policy = "always", backoff = { 5, 5 } } }
f:on("exit", function(ev)
	if ev.state == "backoff" then
		f:stop()
		rec("after-stop", f:status().state)
		hum.sleep(6)
		local st = f:status()
		rec("later", st.state, st.restarts, st.pid)
		hum.shutdown(0)
	end
end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local r = S.read(results)
		assert.matches("after%-stop stopped", r)
		assert.matches("later stopped 0 0", r)
	end)

	it("resets the backoff delay and the restart budget after a run that stayed up restart.reset seconds", function()
		-- runs 1-3 fail at once (delays 0.3, 0.6, 1.2: attempts 1-3, the
		-- budget of max = 3 is spent); run 4 stays up 1.5 s > reset = 1, so
		-- its failure restarts at attempt 1 with the initial 0.3 s delay
		-- (without the reset: gave up; with a reset budget but not delay:
		-- 2.4 s); run 5 exits 0
		local file, _, results = scenario [[
local f = hum.service "f" {
	cmd = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n >count; "
		.. "if [ $n -eq 4 ]; then sleep 1.5; fi; if [ $n -ge 5 ]; then exit 0; fi; exit 1",
	restart = { policy = "on-failure", max = 3, backoff = { 0.3, 10 }, reset = 1 },
}
f:on("start", function(ev) rec("start", ev.restarts, hum.clock()) end)
f:on("exit", function(ev) rec("exit", ev.state, ev.restarts, hum.clock(), ev.reason) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local starts, exits = {}, {}
		for _, l in ipairs(lines(results)) do
			local n, t = l:match("^start (%d+) (%S+)$")
			if n then starts[#starts + 1] = { n = tonumber(n), t = tonumber(t) } end
			local st, en, et, reason = l:match("^exit (%S+) (%d+) (%S+) ?(.*)$")
			if st then exits[#exits + 1] = { state = st, n = tonumber(en), t = tonumber(et), reason = reason } end
		end
		assert.are.equal(5, #starts, S.read(results))
		assert.are.equal(5, #exits, S.read(results))
		for k = 1, 5 do assert.are.equal(k - 1, starts[k].n) end
		assert.are.equal("restarting in 0.3s (attempt 1)", exits[1].reason)
		assert.are.equal("restarting in 0.6s (attempt 2)", exits[2].reason)
		assert.are.equal("restarting in 1.2s (attempt 3)", exits[3].reason)
		assert.are.equal("restarting in 0.3s (attempt 1)", exits[4].reason)
		assert.are.same({ "backoff", "backoff", "backoff", "backoff", "succeeded" },
			{ exits[1].state, exits[2].state, exits[3].state, exits[4].state, exits[5].state })
		-- the delays: doubling, then back to the initial one (the doubled one
		-- would be 2.4 s: the bound leaves 1.7 s for a loaded machine)
		assert.is_true(starts[2].t - exits[1].t >= 0.27)
		assert.is_true(starts[3].t - exits[2].t >= 0.57)
		assert.is_true(starts[4].t - exits[3].t >= 1.17)
		assert.is_true(exits[4].t - starts[4].t >= 1.4, "run 4 stayed up")
		local gap = starts[5].t - exits[4].t
		assert.is_true(gap >= 0.27 and gap < 2.0, "delay after the reset: " .. gap)
	end)
end)

describe("p:restart()", function()
	local run = scenario_run
	-- (here the lines of a text, not of a file)
	local lines = S.lines

	it("reports the old run's exit when a running process is restarted", function()
		local code, out, r = run [[
local s = hum.service "s" { cmd = "exec sleep 100" }
local n = 0
s:on("exit", function(ev) rec("exit", ev.state, ev.signal) end)
s:on("start", function(ev)
	n = n + 1
	if n == 1 then
		s:restart()
	else
		rec("restarted", ev.restarts)
		hum.shutdown(0)
	end
end)
]]
		assert.are.equal(0, code, out)
		local l = lines(r)
		assert.are.equal("exit stopped TERM", l[1])
		assert.are.equal("restarted 1", l[2])
	end)
end)
