-- The dependency graph: dependents start once their condition holds, stay
-- pending with a reason when it cannot hold, stop before their dependencies;
-- a selection (`hum up NAME`, `hum up GROUP`) starts only what it needs; each
-- task of a diamond runs once.
local S = require "support.hum"
local run = require "support.scenario".run
local ps = require "support.cli".ps
local cjson = require "cjson"

local scenario = S.scenario
local marker = S.marker
local exists = S.exists
local lines = S.lines

describe("dependencies", function()
	it("starts dependents only after their condition holds", function()
		local code, out, r = run [[
local a = hum.task "a" { cmd = "echo a" }
local b = hum.service "b" { cmd = "sleep 0.3; echo listening; sleep 100", ready = hum.ready.line "listening", after = { a = "succeeded" } }
local c = hum.task "c" { cmd = "echo c", after = { b = "ready" } }
local d = hum.task "d" { cmd = "exit 4", after = { c = "completed" } }
local e = hum.task "e" { cmd = "echo e", after = { d = "completed" } }
local f = hum.task "f" { cmd = "echo f", after = { b = "started" } }
for _, p in ipairs { a, b, c, d, e, f } do
	p:on("start", function(ev) rec("start", ev.name) end)
	p:on("ready", function(ev) rec("ready", ev.name) end)
end
e:on("exit", function() hum.shutdown(0) end)
]]
		assert.are.equal(0, code, out)
		local order = {}
		for ev, name in r:gmatch("(%a+) (%a)\n") do order[#order + 1] = ev .. ":" .. name end
		local pos = {}
		for k, v in ipairs(order) do pos[v] = pos[v] or k end
		assert.is_true(pos["start:b"] > pos["ready:a"])
		assert.is_true(pos["start:c"] > pos["ready:b"])
		assert.is_true(pos["start:d"] > pos["start:c"])
		assert.is_true(pos["start:e"] > pos["start:d"])
		assert.is_true(pos["start:f"] > pos["start:b"])
	end)

	it("leaves dependents pending with a reason when a dependency fails", function()
		local code, out, r = run [[
local a = hum.task "a" { cmd = "exit 2" }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "succeeded" } }
a:on("exit", function()
	hum.sleep(0.3)
	local st = b:status()
	rec("b", st.state, st.pid, st.reason)
end)
]]
		assert.are.equal(1, code, out)
		assert.matches("b pending 0 a failed", r)
	end)

	it("stops dependents before their dependencies at shutdown", function()
		local code, out, r = run [[
-- each is ready once its TERM trap is set
local armed = hum.ready.line "armed"
local db = hum.service "db" { cmd = "trap 'echo db-term; exit 0' TERM; echo armed; while :; do sleep 0.05; done", ready = armed }
local api = hum.service "api" { cmd = "trap 'sleep 0.3; exit 0' TERM; echo armed; while :; do sleep 0.05; done", after = { db = "ready" }, ready = armed }
local web = hum.service "web" { cmd = "trap 'sleep 0.3; exit 0' TERM; echo armed; while :; do sleep 0.05; done", after = { api = "ready" }, ready = armed }
for _, p in ipairs { db, api, web } do
	p:on("exit", function(ev) rec("exit", ev.name) end)
end
hum.on("ready", function() hum.shutdown(0) end)
]]
		assert.are.equal(0, code, out)
		local order = {}
		for name in r:gmatch("exit (%a+)") do order[#order + 1] = name end
		assert.are.same({ "web", "api", "db" }, order)
	end)

	it("starts only the selection and its dependencies", function()
		local code, out, r = run([[
hum.task "a" { cmd = "echo a" }
hum.task "b" { cmd = "echo b", after = { "a" } }
hum.task "c" { cmd = "echo c" }
hum.on("exit", function(ev) rec("exit", ev.name) end)
]], { "b" })
		assert.are.equal(0, code, out)
		assert.matches("exit a", r)
		assert.matches("exit b", r)
		assert.is_nil(r:find("exit c"))
	end)
end)

describe("conditions", function()
	it("leaves dependents pending when a dependency was stopped", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100", ready = hum.ready.exec({ "sh", "-c", "exit 1" }, { interval = 0.05 }) }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "ready" } }
local c = hum.task "c" { cmd = "true", after = { a = "started" } }
a:on("start", function()
	a:stop()
	rec("stopped", hum.wait(a, "stopped", 20))
	eventually(function() return b:status().reason == "a stopped" end, "b blocked")
	local sb = b:status()
	rec("b", sb.state, sb.pid, sb.reason)
	rec("c", hum.wait(c, "succeeded", 20))
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("stopped true\n", r)
		assert.matches("b pending 0 a stopped\n", r)
		-- c only needed a to have started
		assert.matches("c true\n", r)
	end)

	it("starts a stopped dependency again when a dependent is started", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "exec sleep 100" }
local b = hum.service "b" { cmd = "exec sleep 100", after = { a = "started" }, autostart = false }
local t = hum.task "t" { cmd = "true", after = { a = "started" } }
t:on("exit", function()
	a:stop()
	rec("a", hum.wait(a, "stopped", 20))
	b:start()
	rec("b", hum.wait(b, "started", 20), a:status().pid > 0, a:status().state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("a true\n", r)
		assert.matches("b true true [rn][ue][na][dn]", r) -- running or ready
	end)

	it("fails the started condition when the dependency cannot be spawned", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = { "/nonexistent/binary" } }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "started" } }
local c = hum.task "c" { cmd = "true", after = { b = "started" } }
a:on("exit", function(ev) rec("exit", ev.name, ev.state) end)
a:on("state", function(ev)
	if ev.state ~= "failed" then return end
	eventually(function() return c:status().reason:find("cannot start") end, "c blocked")
	local sa, sb, sc = a:status(), b:status(), c:status()
	rec("a", sa.state, sa.spawn_error, sa.reason)
	rec("b", sb.state, sb.pid, sb.reason)
	rec("c", sc.state, sc.reason)
end)
]]
		assert.are.equal(1, code, out)
		assert.matches("exit a failed\n", r)
		assert.matches("a failed true exec /nonexistent/binary: No such file or directory\n", r)
		assert.matches("b pending 0 a failed\n", r)
		assert.matches("c pending b cannot start: a failed\n", r)
	end)

	it("runs each task of a diamond graph exactly once", function()
		local dir = S.tmpdir()
		local file = S.config(([[
local hum = require "hum"
local function job(name, after)
	return hum.task(name) { cmd = ("sleep 0.1; echo %%s >> %s/runs"):format(name), after = after }
end
job("a")
job("b", { "a" })
job("c", { "a" })
job("d", { "b", "c" })
]]):format(dir), dir)
		for _, args in ipairs { { "run", "-f", file, "-j", "4", "d" }, { "up", "-f", file } } do
			os.remove(dir .. "/runs")
			local code, out = S.run(args)
			assert.are.equal(0, code, out)
			local l = lines(S.read(dir .. "/runs") or "")
			assert.are.equal(4, #l, table.concat(l, " "))
			assert.are.equal("a", l[1])
			assert.are.equal("d", l[4])
			local mid = { l[2], l[3] }
			table.sort(mid)
			assert.are.same({ "b", "c" }, mid)
		end
	end)
end)

describe("hum up", function()
	it("starts only a group's members and their dependencies with hum up GROUP", function()
		local mark = marker("GROUP")
		local file, dir = scenario(([[
hum.env { MARK = %q }
local dep = hum.service "dep" { cmd = "echo dep-up; exec sleep 1000", ready = hum.ready.line "dep%%-up" }
local a = hum.service "a" { cmd = "echo a-up; exec sleep 1000", after = { "dep" }, ready = hum.ready.line "a%%-up" }
hum.service "other" { cmd = "touch other-ran; echo other-up; exec sleep 1000" }
hum.service "b" { cmd = "touch b-ran; exec sleep 1000", group = "g2" }
hum.task "t" { cmd = "touch t-ran", groups = { "g2" } }
hum.group "g" { a }
]]):format(mark))
		local h = S.start({ "up", "-f", file, "g" }, { cwd = dir })
		finally(function() h:close() end)
		local procs = S.wait(function()
			local by = ps(dir)
			-- every process is listed as soon as the socket answers
			-- (the world is published before it listens)
			assert(not by or (by.a and by.other), "hum ps answered without every process")
			return by and by.a.state == "ready" and by
		end, nil, "a ready")
		assert.are.equal("ready", procs.dep.state)
		-- `other` has no dependency: had it been wanted, it would have been
		-- started in the same pass as dep, long before a was ready
		for _, name in ipairs { "other", "b", "t" } do
			assert.are.equal("pending", procs[name].state, name)
			assert.are.equal(cjson.null, procs[name].pid, name)
			assert.are.equal(cjson.null, procs[name].started_at, name)
		end
		for _, f in ipairs { "other-ran", "b-ran", "t-ran" } do assert.is_false(exists(dir .. "/" .. f), f) end
		assert.are.equal(2, #S.pids_with_env(mark))
		local out = h:output()
		assert.matches("dep%s+│ dep%-up", out)
		assert.matches("a%s+│ a%-up", out)
		assert.is_nil(out:find("other-up", 1, true), out)
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 10, "dep and a gone")
	end)
end)
