-- Dependency gating: "may start" (every `after` condition holds now) on
-- every start path, "can never" with the root cause, recovery once the
-- condition holds again, and work linear in the size of the graph.
--
-- Reactions wait on events (hum.wait) or poll a condition with a generous
-- deadline (eventually), never on a fixed delay.
local H = require "support.socket"
local S = H.S
local run = S.run_scenario

local function chain(n, dir)
	return S.config(([[
local hum = require "hum"
hum.task "t0" { cmd = "true" }
for i = 1, %d - 1 do hum.task("t" .. i) { cmd = "true", after = { "t" .. (i - 1) } } end
]]):format(n), dir)
end

describe("may start: every start path goes through the gate", function()
	it("holds a policy restart, p:restart(), hum.restart and p:start() while the dependency is not ready", function()
		local code, out, r = run [[
local flag = "ok.flag"
io.open(flag, "w"):close()
local cache = hum.service "cache" { cmd = "exec sleep 100",
	ready = hum.ready.exec("test -e ok.flag", { interval = 0.05, timeout = 600 }) }
local api = hum.service "api" { cmd = "exec sleep 100", after = { cache = "ready" },
	restart = { policy = "always", backoff = { 0.05, 0.1 } } }
local starts = 0
api:on("start", function() starts = starts + 1 end)
local once = false
api:on("ready", function()
	if once then return end
	once = true
	os.remove(flag)
	cache:stop()
	hum.wait(cache, "stopped", 20)
	-- the policy wants api back: its backoff ends, the gate holds it
	api:signal("KILL")
	eventually(function() return api:status().state == "pending" end, "api pending")
	rec("policy", starts, api:status().state, api:status().reason, api:status().ready)
	-- each of these also starts cache again (a start starts what it
	-- needs), but cache is not ready: api keeps waiting
	api:restart()
	hum.restart("api")
	api:start()
	hum.wait(cache, "running", 20)
	hum.sleep(0.3)
	rec("asked", starts, api:status().state, api:status().reason)
	-- the condition holds again: api starts by itself
	io.open(flag, "w"):close()
	cache:start()
	rec("back", hum.wait(api, "ready", 30), starts)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("policy 1 pending cache stopped false\n", r)
		assert.matches("asked 1 pending waiting for cache %(ready%)\n", r)
		assert.matches("back true 2\n", r)
	end)

	it("holds the restart asked after a stop, and names what it waits for", function()
		local code, out, r = run [[
local slow = hum.service "slow" { cmd = "exec sleep 100",
	ready = hum.ready.exec("test -e go.flag", { interval = 0.05, timeout = 600 }) }
local web = hum.service "web" { cmd = "exec sleep 100", after = { slow = "ready" }, autostart = false }
slow:on("start", function(ev)
	if ev.restarts > 0 then return end
	web:start()
	rec("first", web:status().state, web:status().reason)
	io.open("go.flag", "w"):close()
	rec("ready", hum.wait(web, "ready", 30))
	-- slow restarts (its probe waits for the flag again): web keeps running
	-- and a restart of web meanwhile waits for slow
	os.remove("go.flag")
	slow:restart()
	eventually(function() return slow:status().restarts == 1 and slow:status().state == "running" end, "slow again")
	web:restart()
	eventually(function() return web:status().state == "pending" end, "web pending")
	rec("second", web:status().state, web:status().reason)
	io.open("go.flag", "w"):close()
	rec("again", hum.wait(web, "ready", 30))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("first pending waiting for slow %(ready%)\n", r)
		assert.matches("ready true\n", r)
		assert.matches("second pending waiting for slow %(ready%)\n", r)
		assert.matches("again true\n", r)
	end)

	it("runs again after a start asked while a stop is under way, through the gate", function()
		local code, out, r = run [[
-- each is ready once its TERM trap is set
local db = hum.service "db" { cmd = "trap 'sleep 0.3; exit 0' TERM; echo armed; while :; do sleep 0.05; done",
	ready = hum.ready.line "armed" }
local web = hum.service "web" { cmd = "trap 'sleep 0.3; exit 0' TERM; echo armed; while :; do sleep 0.05; done",
	after = { db = "ready" }, ready = hum.ready.line "armed" }
web:on("ready", function()
	if web:status().restarts > 0 or web:status().run > 1 then return end
	db:stop()
	web:stop()
	-- both still stopping: the starts are carried out once the stops are over
	db:start()
	web:start()
	rec("states", db:status().state, web:status().state)
	hum.wait(web, "stopped", 20)
	rec("db", hum.wait(db, "ready", 20))
	rec("web", hum.wait(web, "ready", 20), web:status().run)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("states stopping stopping\n", r)
		assert.matches("db true\nweb true 2\n", r)
	end)

	it("holds `hum restart` and `hum start` from the socket, and starts once the condition holds", function()
		local u = H.up([[
local hum = require "hum"
hum.service "cache" { cmd = "exec sleep 1000", ready = hum.ready.exec("test -e ok.flag", { interval = 0.05, timeout = 600 }) }
hum.service "api" { cmd = "echo start >> api.starts; exec sleep 1000", after = { cache = "ready" },
	restart = { policy = "on-failure", backoff = { 0.05, 0.1 } } }
]])
		finally(function() u:close() end)
		S.write(u.dir .. "/ok.flag", "")
		u:wait_state("api", "ready")
		os.remove(u.dir .. "/ok.flag")
		local code, out = u:hum { "stop", "cache" }
		assert.are.equal(0, code, out)
		code, out = u:hum { "restart", "api" }
		assert.are.equal(0, code, out)
		local p = u:wait_state("api", "pending")
		assert.are.equal("cache stopped", p.reason)
		assert.is_false(p.ready)
		code, out = u:hum { "start", "api" } -- starts cache again too; api waits for it to be ready
		assert.are.equal(0, code, out)
		p = u:proc("api")
		assert.are.equal("pending", p.state)
		assert.are.equal("waiting for cache (ready)", p.reason)
		assert.are.equal("start\n", S.read(u.dir .. "/api.starts"))
		S.write(u.dir .. "/ok.flag", "")
		u:wait_state("api", "ready")
		assert.are.equal("start\nstart\n", S.read(u.dir .. "/api.starts"))
	end)
end)

describe("can never: the root cause, and recovery", function()
	it("marks everything that waits on a failed dependency with the root cause, once", function()
		local code, out, r = run [[
local a = hum.task "a" { cmd = "test -e fixed" }
local b = hum.service "b" { cmd = "exec sleep 100", after = { a = "succeeded" } }
local c = hum.service "c" { cmd = "exec sleep 100", after = { b = "ready" } }
local d = hum.task "d" { cmd = "true", after = { c = "started" } }
local other = hum.service "other" { cmd = "exec sleep 100" }
a:on("exit", function(ev)
	if ev.state ~= "failed" then return end
	eventually(function() return d:status().reason:find("cannot start") end, "d blocked")
	for _, p in ipairs { b, c, d } do rec(p.name, p:status().state, p:status().reason) end
	-- the condition can hold again: a user's start of a reopens everything
	io.open("fixed", "w"):close()
	a:start()
	rec("d", hum.wait(d, "succeeded", 30), c:status().state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("b pending a failed\n", r)
		assert.matches("c pending b cannot start: a failed\n", r)
		assert.matches("d pending c cannot start: a failed\n", r)
		assert.matches("d true ready\n", r)
		-- said once, for the first of the chain
		local _, n = out:gsub("cannot start", "")
		assert.are.equal(1, n, out)
		assert.matches("b cannot start: a failed", out)
	end)

	it("exits hum up 1 at its end when something waited for what could never happen", function()
		local code, out = run [[
local db = hum.service "db" { cmd = "exit 3", ready = hum.ready.line "up" }
hum.service "web" { cmd = "exec sleep 100", after = { db = "ready" } }
]]
		assert.are.equal(1, code, out)
		assert.matches("web cannot start: db failed", out)
	end)

	it("keeps waiting processes in a hum up -d and starts them once the condition holds", function()
		local u = H.up([[
local hum = require "hum"
hum.service "db" { cmd = "test -e db.ok && exec sleep 1000", ready = hum.ready.exec("test -e db.ok", { interval = 0.05 }) }
hum.service "web" { cmd = "exec sleep 1000", after = { db = "ready" } }
hum.service "keep" { cmd = "exec sleep 1000" } -- keeps this hum up running
]])
		finally(function() u:close() end)
		u:wait_state("db", "failed")
		local p = S.wait(function()
			local w = u:proc("web")
			return w and w.reason == "db failed" and w
		end, nil, "web blocked")
		assert.are.equal("pending", p.state)
		S.write(u.dir .. "/db.ok", "")
		local code, out = u:hum { "start", "db" }
		assert.are.equal(0, code, out)
		u:wait_state("web", "ready")
		assert.is_nil(u.bg:code()) -- it kept running all along
	end)

	it("reports a readiness probe that gave up as never ready, and a restart clears it", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "exec sleep 100",
	ready = hum.ready.exec("test -e a.ok", { interval = 0.05, retries = 2 }) }
local b = hum.service "b" { cmd = "exec sleep 100", after = { a = "ready" } }
a:on("start", function(ev)
	if ev.restarts > 0 then return end
	eventually(function() return b:status().reason == "a never became ready" end, "b blocked")
	rec("blocked", b:status().state, b:status().reason)
	io.open("a.ok", "w"):close()
	a:restart()
	rec("b", hum.wait(b, "ready", 30))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("blocked pending a never became ready\n", r)
		assert.matches("b true\n", r)
	end)
end)

describe("work linear in the size of the graph", function()
	it("runs an `after` chain of 3,000 tasks, and checks one of 20,000, without recursion", function()
		local file, dir = chain(3000)
		local t0 = S.now()
		local code, out = S.run({ "run", "-f", file, "t2999" }, { cwd = dir, timeout = 240 })
		assert.are.equal(0, code, out:sub(-2000))
		assert.is_nil(out:find("stack overflow"))
		-- generous: about 1 ms of CPU per task here; the old evaluation took minutes
		assert.is_true(S.now() - t0 < 200, "took " .. (S.now() - t0) .. " s")
		file = chain(20000, S.tmpdir())
		code, out = S.run({ "check", "-f", file }, { timeout = 120 })
		assert.are.equal(0, code, out:sub(-2000))
		assert.matches("20000 processes", out)
	end)

	it("still reports a cycle at the end of a long chain", function()
		local file = S.config([[
local hum = require "hum"
hum.task "t0" { cmd = "true", after = { "t9999" } }
for i = 1, 9999 do hum.task("t" .. i) { cmd = "true", after = { "t" .. (i - 1) } } end
]])
		local code, out = S.run({ "check", "-f", file }, { timeout = 120 })
		assert.are.equal(1, code, out)
		assert.matches("dependency cycle: t0 %-> t9999 %-> t9998", out)
	end)
end)
