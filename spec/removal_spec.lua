-- Retiring processes (rt:remove) where rules meet: dependents, commands
-- waiting on the process, `hum run`, shutdown order, hum.wait, listeners
-- that fail, and the generation that events go to.  Each case names a
-- fault a removal once caused (an internal traceback, a hang, a wrong exit
-- status, an order broken).
local H = require "support.socket"
local S = H.S
local run = require "support.scenario".run

local REMOVE = [[local rt = require("hum.runtime").current; return rt:remove(rt.by_name[%q])]]

describe("removal", function()
	it("leaves what depends on the removed process pending, and starting it is no error", function()
		local u = H.up [[
local hum = require "hum"
hum.service "db" { cmd = "exec sleep 1000" }
hum.service "web" { cmd = "exec sleep 1000", after = { db = "started" }, scale = 2 }
hum.service "worker" { cmd = "exec sleep 1000", after = { web = "started" } }
]]
		finally(function() u:close() end)
		u:wait_state("worker", "ready")
		local code, out = u:hum { "eval", REMOVE:format("web.1") }
		assert.are.equal(0, code, out)
		u:wait_state("worker", "ready") -- a started dependent is left alone
		code, out = u:hum { "stop", "worker" }
		assert.are.equal(0, code, out)
		code, out = u:hum { "start", "worker" }
		assert.is_nil(out:find("internal error", 1, true), out)
		local p = u:proc("worker")
		assert.are.equal("pending", p.state)
		assert.matches("web.1 was removed", p.reason, 1, true)
		code, out = u:hum { "eval", "return hum.start('worker')" }
		assert.are.equal(0, code, out)
		assert.is_nil(out:find("traceback", 1, true), out)
	end)

	it("answers a stop, restart or run waiting on a process retired meanwhile", function()
		local u = H.up [[
local hum = require "hum"
hum.service "slow" { cmd = "trap 'sleep 1; exit 0' TERM; echo on; while :; do sleep 0.1; done", stop = { grace = 10 } }
hum.task "t" { cmd = "echo t-on; exec sleep 1000", autostart = false }
]]
		finally(function() u:close() end)
		u:wait_state("slow", "ready")
		S.wait(function() return (select(2, u:hum { "logs", "slow" })):find("on", 1, true) end, 20, "slow's trap")
		local stop = S.start({ "stop", "slow" }, { cwd = u.dir })
		S.wait(function() return u:proc("slow").state == "stopping" end, 20, "slow stopping")
		local code, out = u:hum { "eval", REMOVE:format("slow") }
		assert.are.equal(0, code, out)
		S.wait(function() return stop:code() ~= nil end, 30, "hum stop answered")
		assert.are.equal(0, stop:code(), stop:output())
		assert.is_nil(stop:output():find("internal error", 1, true), stop:output())
		-- hum run of a task retired while it runs
		local runner = S.start({ "run", "t" }, { cwd = u.dir })
		runner:wait_output("t%-on")
		code, out = u:hum { "eval", REMOVE:format("t") }
		assert.are.equal(0, code, out)
		S.wait(function() return runner:code() ~= nil end, 30, "hum run answered")
		assert.are_not.equal(0, runner:code(), runner:output())
		assert.matches("t was removed", runner:output(), 1, true)
		assert.is_nil(runner:output():find("internal error", 1, true), runner:output())
	end)

	it("ends hum run with status 1 when its target is retired", function()
		local file, dir = S.config [[
local hum = require "hum"
local R = require "hum.runtime"
hum.service "db" { cmd = "exec sleep 1000" }
hum.task "build" { cmd = "echo building; sleep 30", after = { db = "started" } }
hum.get("build"):on("start", function()
	local rt = R.current
	rt:remove(rt.by_name.build)
end)
]]
		local code, out = S.run({ "run", "-f", file, "build" }, { cwd = dir, timeout = 60 })
		assert.are.equal(1, code, out)
		assert.matches("task build was removed; stopping", out, 1, true)
		assert.matches("db: stopped", out, 1, true)
	end)

	it("keeps the shutdown order through a definition whose processes were all removed", function()
		local code, out, r = run [[
local R = require "hum.runtime"
local db = hum.service "db" { cmd = "exec sleep 1000" }
local api = hum.service "api" { cmd = "exec sleep 1000", after = { "db" } }
local web = hum.service "web" { cmd = "trap 'sleep 0.5; exit 0' TERM; echo on; while :; do sleep 0.05; done", after = { "api" } }
db:on("exit", function() rec("db-exit", web:status().state) end)
web:on("exit", function() rec("web-exit") end)
hum.on("ready", function()
	eventually(function() return #web:logs { n = 1 } > 0 end, "web's trap")
	local rt = R.current
	rt:remove(rt.by_name.api)
	eventually(function() return R.find("api") == nil end, "api retired")
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		-- db went only once web had exited, though api (between them) was gone
		assert.matches("web%-exit\ndb%-exit stopped", r)
	end)

	it("makes hum.wait on a process whose every instance was removed return why", function()
		local code, out, r = run [[
local R = require "hum.runtime"
local b = hum.service "b" { cmd = "exec sleep 1000" }
local keep = hum.service "keep" { cmd = "exec sleep 1000" }
hum.on("ready", function()
	local rt = R.current
	rec("bad", pcall(rt.remove, rt, nil))
	rt:remove(rt.by_name.b)
	eventually(function() return R.find("b") == nil end, "b retired")
	rec("wait", hum.wait(b, "ready", 5))
	rec("wait-name", hum.wait("b", "exit", 5))
	rec("retire", pcall(rt.retire, rt))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("bad false [^\n]*rt:remove: expected an instance of this generation", r)
		assert.matches("wait nil b was removed", r)
		assert.matches("wait%-name nil b was removed", r)
		assert.matches("retire false [^\n]*this is the current generation", r)
	end)

	it("reports a failing listener with its traceback, and goes on", function()
		local code, out, r = run [[
local R = require "hum.runtime"
local db = hum.service "db" { cmd = "sleep 0.3; echo up; exec sleep 1000", ready = hum.ready.line "up" }
local api = hum.service "api" { cmd = "exec sleep 1000", after = { db = "ready" } }
local web = hum.service "web" { cmd = "exec sleep 1000", after = { api = "ready" } }
local n = 0
R.listen("gate", function() n = n + 1 error("gate listener broke") end)
R.listen("state", function(i, new) if new == "running" then error("state listener broke") end end)
local later
R.listen("state", function() later:off() end)
later = R.listen("state", function() rec("later-called") end)
hum.on("ready", function()
	rec("ready", web:status().state, n > 0)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("ready ready true", r)
		assert.matches("gate listener failed: [^\n]*gate listener broke", out)
		assert.matches("stack traceback", out, 1, true)
		assert.matches("state listener failed: [^\n]*state listener broke", out)
		-- switched off by an earlier listener of the same event: not called for it
		assert.is_nil(r:find("later-called", 1, true), r)
	end)

	it("gives hum run the code of the failed task that makes its target impossible", function()
		local file, dir = S.config [[
local hum = require "hum"
hum.task "d" { cmd = "exit 4" }
hum.task "all" { cmd = "true", after = { "d" } }
]]
		local code, out = S.run({ "run", "-f", file, "all" }, { cwd = dir, timeout = 60 })
		assert.are.equal(4, code, out)
		assert.matches("all can never start: d failed", out, 1, true)
	end)
end)
