-- Readiness means "ready now", one definition for gating, hum.wait,
-- hum.on("ready"), p:status() and the socket; exec probes see the
-- process's environment and directory; liveness failures go through the
-- restart policy.
local H = require "support.socket"
local S = H.S
local run = S.run_scenario

describe("ready now", function()
	it("is false while stopping and in backoff, for status, hum.wait and gating", function()
		local code, out, r = run [[
local svc = hum.service "svc" { cmd = "trap 'sleep 0.5; exit 0' TERM; echo armed; while :; do sleep 0.05; done",
	ready = hum.ready.line "armed" } -- ready once its TERM trap is set
local late = hum.service "late" { cmd = "exec sleep 100", after = { svc = "ready" }, autostart = false }
local crash = hum.service "crash" { cmd = "sleep 0.2; exit 1", restart = { policy = "on-failure", backoff = { 1, 1 } } }
local once = false
svc:on("ready", function()
	if once then return end
	once = true
	rec("ready", svc:status().ready, hum.wait(svc, "ready", 0))
	svc:stop()
	eventually(function() return svc:status().state == "stopping" end, "stopping")
	rec("stopping", svc:status().ready, hum.wait(svc, "ready", 0.1))
	-- starting late starts svc again too (a start starts what it needs),
	-- once its stop is over: late waits until svc is ready again
	late:start()
	rec("late", late:status().state, late:status().reason)
	hum.wait(svc, "stopped", 20)
	-- svc may have started again by the time this reaction resumes (the
	-- start was asked for during the stop): ready now follows its state
	rec("stopped", svc:status().state, svc:status().ready, late:status().state)
	rec("late", hum.wait(late, "ready", 20), svc:status().run, svc:status().ready)
	eventually(function() return crash:status().state == "backoff" end, "backoff")
	rec("backoff", crash:status().ready, hum.wait(crash, "ready", 0.05))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("ready true true\n", r)
		assert.matches("stopping false nil timeout\n", r)
		assert.matches("late pending waiting for svc %(ready%)\n", r)
		local st, rdy, lst = r:match("\nstopped (%S+) (%S+) (%S+)\n")
		assert.is_truthy(st, r)
		assert.are.equal(st == "ready" and "true" or "false", rdy, r)
		if st == "stopped" then assert.are.equal("pending", lst, r) end
		assert.matches("late true 2 true\n", r)
		assert.matches("backoff false nil timeout\n", r)
	end)

	it("reports ready=false on the socket while stopping", function()
		local u = H.up([[
local hum = require "hum"
hum.service "svc" { cmd = "trap 'sleep 2; exit 0' TERM; echo armed; while :; do sleep 0.05; done",
	ready = hum.ready.line "armed" } -- ready once its TERM trap is set
hum.service "other" { cmd = "exec sleep 1000" }
]])
		finally(function() u:close() end)
		assert.is_true(u:wait_state("svc", "ready").ready)
		local c = u:connect()
		c:send(H.json.encode({ cmd = "stop", targets = { "svc" } }) .. "\n")
		local p = u:wait_state("svc", "stopping")
		assert.is_false(p.ready)
		c:close()
	end)

	it("fires hum.on(\"ready\") when everything is ready at that moment", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "exec sleep 100", ready = hum.ready.exec("true", { interval = 0.05 }) }
local b = hum.service "b" { cmd = "exec sleep 100", after = { a = "ready" } }
local t = hum.task "t" { cmd = "true", after = { b = "started" } }
hum.on("ready", function()
	rec("all", a:status().ready, b:status().ready, t:status().state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("all true true succeeded\n", r)
	end)
end)

describe("exec probes", function()
	it("run with the process's environment and in its working directory", function()
		local check = [[test "$FROM_HUM=$FROM_FILE=$OWN=$HUM_PROCESS" = "hum=file=own=$1" && test "$(basename "$(pwd -P)")" = sub]]
		local code, out, r = S.run_scenario(([[
os.execute("mkdir -p sub")
local f = io.open("vars.env", "w") f:write("FROM_FILE=file\n") f:close()
hum.env { FROM_HUM = "hum" }
hum.env_file "vars.env"
local svc = hum.service "svc" { cmd = "exec sleep 100", cwd = "sub", env = { OWN = "own" },
	ready = hum.ready.exec({ "sh", "-c", %q, "sh", "svc" }, { interval = 0.05, timeout = 30 }) }
local n = 0
local live = hum.service "live" { cmd = "exec sleep 100", cwd = "sub", env = { OWN = "own" },
	liveness = hum.ready.exec({ "sh", "-c", %q .. " && echo ok >> ../live.seen", "sh", "live" }, { interval = 0.05, retries = 1 }) }
svc:on("ready", function()
	rec("svc", svc:status().state)
	eventually(function() local f = io.open("live.seen") if f then f:close() return true end end, "liveness ran")
	hum.sleep(0.3)
	rec("live", live:status().state, live:status().restarts)
	hum.shutdown(0)
end)
]]):format(check, check))
		assert.are.equal(0, code, out)
		assert.matches("svc ready\n", r)
		assert.matches("live ready 0\n", r)
	end)
end)

describe("liveness failures", function()
	it("go through the restart policy: backoff between runs, and `max`", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "exec sleep 100",
	liveness = hum.ready.exec("false", { interval = 0.05, retries = 2 }),
	restart = { policy = "on-failure", max = 2, backoff = { 0.3, 0.3 } } }
local seq = {}
a:on("state", function(ev) seq[#seq + 1] = ev.state end)
a:on("exit", function(ev)
	if ev.state ~= "failed" then return end
	rec("states", table.concat(seq, " ") .. " " .. ev.state)
	rec("final", a:status().restarts, a:status().reason)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		-- every failed run is stopped, then waits in backoff: never a tight loop
		assert.matches("states running ready stopping backoff running ready stopping backoff running ready stopping failed\n", r)
		assert.matches("final 2 liveness probe failed 2 times in a row %(exit code 1%) %(gave up after 2 restarts%)\n", r)
	end)

	it("restart with policy \"no\" too, and the new run waits for its dependencies", function()
		local code, out, r = run [[
local dep = hum.service "dep" { cmd = "exec sleep 100", ready = hum.ready.exec("test -e dep.ok", { interval = 0.05, timeout = 600 }) }
local a = hum.service "a" { cmd = "exec sleep 100", after = { dep = "ready" },
	liveness = hum.ready.exec("test -e a.ok", { interval = 0.05, retries = 1 }),
	restart = { backoff = { 0.1, 0.1 } } }
io.open("dep.ok", "w"):close()
io.open("a.ok", "w"):close()
a:on("ready", function()
	if a:status().restarts > 0 then
		rec("back", a:status().restarts)
		hum.shutdown(0)
		return
	end
	dep:restart()
	os.remove("dep.ok")
	hum.wait(dep, "running", 20)
	os.remove("a.ok")
	eventually(function() return a:status().state == "pending" end, "a pending")
	rec("waits", a:status().reason)
	io.open("a.ok", "w"):close()
	io.open("dep.ok", "w"):close()
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("waits waiting for dep %(ready%)\n", r)
		assert.matches("back 1\n", r)
	end)
end)
