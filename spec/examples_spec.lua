-- The demo and the examples in scripts/ load, and the runnable ones work.
local S = require "support.hum"
local ps = require "support.cli".ps

local marker = S.marker

local function scripts()
	local list = {}
	local p = io.popen("ls " .. S.ROOT .. "/scripts/*.lua " .. S.ROOT .. "/scripts/examples/*.lua")
	for f in p:lines() do list[#list + 1] = f end
	p:close()
	return list
end

describe("scripts", function()
	for _, f in ipairs(scripts()) do
		it("hum check accepts " .. f:match("scripts/.*$"), function()
			local code, out = S.run({ "check", "-f", f })
			assert.are.equal(0, code, out)
		end)
	end

	it("builds the monorepo example with hum run all", function()
		local dir = S.tmpdir()
		S.write(dir .. "/hum.lua", S.read(S.ROOT .. "/scripts/examples/monorepo-build.lua"))
		local code, out = S.run({ "run", "-f", dir .. "/hum.lua", "all" })
		assert.are.equal(0, code, out)
		assert.matches("all green", out)
		-- lib-core and lib-ui are independent: both start before either ends
		local a = out:find("building lib%-core") or out:find("building lib%-ui")
		local first_done = math.min(out:find("lib%-core done") or 1e9, out:find("lib%-ui done") or 1e9)
		assert.is_true(out:find("building lib%-ui") < first_done and out:find("building lib%-core") < first_done, out)
		assert.is_truthy(a)
	end)

	it("runs the web stack example: db on TCP, migrate, api, worker restarted on FATAL", function()
		-- a copy: its control socket and lock live next to the config, and
		-- another run (a sanitizer build, a second checkout) must not meet it
		local dir = S.tmpdir()
		S.write(dir .. "/hum.lua", S.read(S.ROOT .. "/scripts/examples/web-stack.lua"))
		local port = tostring(20000 + math.random(0, 20000))
		local h = S.start({ "up", "-f", dir .. "/hum.lua" }, { cwd = dir, env = { WEB_STACK_DB_PORT = port } })
		finally(function() h:close() end)
		h:wait_output("api ready at http://127.0.0.1:8080")
		h:wait_output("worker reported: worker: FATAL")
		h:wait_output("worker: job 1 done.*worker: job 1 done")
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
	end)

	it("collects the last lines of every process when one logs an error", function()
		local dir = S.tmpdir()
		local cfg = S.read(S.ROOT .. "/scripts/examples/collect-on-error.lua")
		S.write(dir .. "/hum.lua", cfg)
		local h = S.start({ "up", "-f", dir .. "/hum.lua" }, { cwd = dir })
		local out = h:wait_output("saved to (hum%-incident%-%d+%.log)")
		h:signal("TERM")
		h:wait_exit()
		local file = out:match("saved to (hum%-incident%-%d+%.log)")
		local text = S.read(dir .. "/" .. file)
		assert.matches("incident: api: api: ERROR upstream timeout", text)
		assert.matches("== api %(", text)
		assert.matches("== worker %(", text)
		assert.matches("worker: tick", text)
	end)

	it("runs the demo of make run (scripts/demo.lua) and stops it with Ctrl-C", function()
		-- the demo listens on no port; a copy in a fresh directory keeps its
		-- control socket out of the source tree
		local mark = marker("DEMO")
		local dir = S.tmpdir()
		local file = S.write(dir .. "/demo.lua", assert(S.read(S.ROOT .. "/scripts/demo.lua")))
		local h = S.start({ "up", "-f", file }, { cwd = dir, env = { DEMO_MARK = mark } })
		finally(function() h:close() end)
		h:wait_output("everything is up; press Ctrl-C to stop", nil, true)
		h:wait_output("api is up at http://127.0.0.1:8080", nil, true)
		local procs = S.wait(function()
			local by = ps(dir, file)
			return by and by.api.state == "ready" and by
		end, nil, "hum ps --json")
		assert.are.equal("ready", procs.db.state)
		assert.are.equal("succeeded", procs.migrate.state)
		assert.is_truthy(({ ready = true, running = true, backoff = true, failed = true })[procs.worker.state],
			procs.worker.state)
		local out = h:output()
		assert.matches("db%s+│ db: ready to accept connections", out)
		assert.matches("migrate%s+│ applying 001_users.*migrate%s+│ migrations done", out)
		-- every process of the demo carries the marker (inherited from hum)
		assert.is_true(#S.pids_with_env(mark) >= 3)
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
		assert.matches("received SIGINT, stopping", h:output())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 10, "the demo's processes gone")
	end)
end)
