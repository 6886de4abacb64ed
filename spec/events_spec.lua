-- Events from C to Lua: bounded line events (back-pressure on the pipe),
-- every start attempt delivered, events as tables with named fields and the
-- time they happened.
--
-- Figures are read from /proc and from event times; bounds are generous
-- (a loaded 2-core machine must not fail them), and each one is far below
-- what the fault it guards against produced (hundreds of MB, 20 s waits).
local S = require "support.hum"

local function rss_kb(pid)
	local f = io.open("/proc/" .. pid .. "/status")
	if not f then return 0 end
	local t = f:read("*a")
	f:close()
	return tonumber(t:match("VmRSS:%s*(%d+)")) or 0
end

local function lines(s)
	local t = {}
	for l in (s or ""):gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

describe("line events", function()
	it("keep memory bounded and Ctrl-C prompt when Lua cannot keep up with a line reaction", function()
		-- The reaction sleeps on every 1000th line, so Lua falls far behind a
		-- writer that never stops; hum must stop reading the pipe instead of
		-- queueing every line.
		local file, dir, results = S.scenario([[
local chatty = hum.service "chatty" { cmd = { "$FIX/flood", "1000000000" },
	ready = hum.ready.line "^line 1$", stop = { grace = 2 } }
local last, seen, bad = 0, 0, 0
chatty:on("line", "^line (%d+)$", function(ev, n)
	n = tonumber(n)
	if n ~= last + 1 then bad = bad + 1 end
	last, seen = n, seen + 1
	if seen % 1000 == 0 then
		rec("progress", seen, bad, ev.seq ~= nil, type(ev.time))
		hum.sleep(0.01)
	end
end)
]])
		local h = S.start({ "up", "-f", file }, { dir = dir })
		S.wait(function() return #lines(S.read(results)) >= 3 end, 30, "line reactions to run")
		local max = 0
		for _ = 1, 30 do
			max = math.max(max, rss_kb(h.pid))
			S.msleep(100)
		end
		local t0 = S.now()
		h:signal("INT")
		local code = h:wait_exit(20)
		local took = S.now() - t0
		h:close()
		local r = lines(S.read(results))
		local _, seen, bad, has_seq, time_type = r[#r]:match("^(%S+) (%d+) (%d+) (%S+) (%S+)$")
		assert.is_true(max < S.rss_bound(128 * 1024), ("hum's RSS reached %d KiB"):format(max))
		assert.is_true(took < 8, ("Ctrl-C took %.1f s (grace 2 s)"):format(took))
		assert.are.equal(130, code)
		assert.are.equal("0", bad, "line reactions saw every line, in order")
		assert.is_true(tonumber(seen) >= 3000)
		assert.are.equal("true", has_seq)
		assert.are.equal("number", time_type)
	end)

	it("are delivered before the exit of the process that printed them", function()
		local file, dir, results = S.scenario [[
local p = hum.task "p" { cmd = { "$FIX/flood", "20000" } }
local n = 0
p:on("line", "^line", function() n = n + 1 end)
p:on("exit", function(ev) rec("exit", n, ev.code) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.are.equal("exit 20000 0", lines(S.read(results))[1])
	end)
end)

describe("state events", function()
	it("report every start attempt, also a spawn error that repeats the last one", function()
		local file, dir, results = S.scenario [[
local bad = hum.service "bad" { cmd = { "/nonexistent/program" } }
local n = 0
bad:on("exit", function(ev)
	n = n + 1
	rec("exit", n, ev.state, type(ev.time), ev.reason:match("No such file") and "enoent" or ev.reason)
	if n < 3 then bad:start() end
end)
hum.on("shutdown", function() rec("shutdown") end)
]]
		local t0 = S.now()
		local code, out = S.run({ "up", "-f", file }, { timeout = 60 })
		local took = S.now() - t0
		local r = lines(S.read(results))
		assert.are.same({
			"exit 1 failed number enoent",
			"exit 2 failed number enoent",
			"exit 3 failed number enoent",
		}, { r[1], r[2], r[3] })
		assert.are.equal(1, code, out)
		assert.is_true(took < 10, ("hum took %.1f s to end"):format(took))
	end)

	it("wake hum.wait(p, \"exit\") on a repeated spawn error", function()
		local file, dir, results = S.scenario [[
local bad = hum.service "bad" { cmd = { "/nonexistent/program" }, autostart = false }
hum.task "driver" { cmd = "true" }:on("exit", function()
	for k = 1, 2 do
		bad:start()
		local ev = hum.wait(bad, "exit", 10)
		rec("wait", k, ev and ev.state or "timeout")
	end
	hum.shutdown(0)
end)
]]
		local code, out = S.run({ "up", "-f", file }, { timeout = 60 })
		assert.are.equal("wait 1 failed\nwait 2 failed\n", S.read(results), out)
	end)

	it("carry the time the change happened, not the time a reaction ran", function()
		local file, dir, results = S.scenario [[
local t = hum.task "t" { cmd = "exit 3" }
t:on("exit", function(ev)
	local t0 = ev.time
	hum.sleep(1.5) -- the same event, seen late, still says when t exited
	rec("times", t0, ev.time, os.time(), ev.code)
end)
]]
		S.run({ "up", "-f", file })
		local evt, again, after, code = (S.read(results) or ""):match("^times (%S+) (%S+) (%S+) (%S+)")
		assert.are.equal("3", code)
		evt, after = tonumber(evt), tonumber(after)
		assert.are.equal(tostring(evt), again)
		-- os.time() is whole seconds: 1.5 s after the exit it is at least 0.5 s later
		assert.is_true(after - evt >= 0.4, ("ev.time %.3f, 1.5 s later os.time() %d"):format(evt, after))
		assert.is_true(after - evt < 30, "ev.time is wall-clock seconds")
	end)
end)
