-- `hum status NAME` shows the definition behind a process (command, cwd,
-- after with conditions, readiness and liveness probes, restart policy),
-- asked from the loop thread with the `describe` request; a process with
-- autostart = false says it waits for a `hum start` (issue #9).
local H = require "support.socket"
local S = H.S
local cjson = H.json

local CONFIG = [[
local hum = require "hum"
hum.service "db" {
	cmd = [=[echo "db up"; exec sleep 1000]=],
	ready = hum.ready.line("db up", { interval = 1, timeout = 30 }),
	stop = { grace = 2 },
}
hum.task "migrate" { cmd = "true", after = { db = "ready" } }
hum.service "web" {
	cmd = { "sleep", "1000" },
	cwd = "sub",
	after = { db = "ready", migrate = "succeeded" },
	restart = { policy = "on-failure", max = 3, backoff = { 1, 8 }, reset = 20 },
	stop = { grace = 2 },
}
hum.task "seed" { cmd = "echo seeded", autostart = false }
]]

describe("hum status", function()
	local u
	setup(function()
		local dir = S.tmpdir()
		os.execute("mkdir -p " .. S.q(dir .. "/sub"))
		u = H.up(CONFIG, { dir = dir })
		u:wait_state("web", { running = true, ready = true })
	end)
	teardown(function() if u then u:close() end end)

	it("describe answers the definitions of the targets", function()
		local r = u:ask({ cmd = "describe", targets = { "web", "db" } })
		assert.is_true(r.ok)
		assert.are.equal(2, #r.procs)
		local web, db = r.procs[1], r.procs[2]
		assert.are.equal("web", web.name)
		assert.are.same({ "sleep", "1000" }, web.cmd)
		assert.matches("/sub$", web.cwd)
		assert.are.same({ { name = "db", cond = "ready" }, { name = "migrate", cond = "succeeded" } }, web.after)
		assert.are.equal(cjson.null, web.probe)
		assert.are.same({ policy = "on-failure", max = 3, backoff = { 1, 8 }, reset = 20 }, web.restart)
		assert.are.equal("db", db.name)
		assert.are.equal('line "db up" (interval 1s, timeout 30s)', db.probe)
		assert.are.equal("table", type(db.after))
		assert.are.equal(0, #db.after)
		local _, line = u:ask({ cmd = "describe", targets = { "db" } })
		assert.matches('"after":%[%]', line)
		r = u:ask({ cmd = "describe", targets = { "ghost" } })
		assert.is_false(r.ok)
		r = u:ask({ cmd = "describe" })
		assert.is_false(r.ok)
	end)

	it("status prints command, cwd, after, probe, liveness and restart", function()
		local code, out = u:hum({ "status", "web" })
		assert.are.equal(0, code, out)
		assert.matches("name:%s+web", out)
		assert.matches("command:%s+sleep 1000\n", out)
		assert.matches("cwd:%s+%S+/sub\n", out)
		assert.matches("after:%s+db %(ready%), migrate %(succeeded%)\n", out)
		assert.matches("probe:%s+%-\n", out)
		assert.matches("liveness:%s+%-\n", out)
		assert.matches("restart:%s+on%-failure %(max 3, backoff 1s..8s, reset after 20s%)", out)
		code, out = u:hum({ "status", "db" })
		assert.are.equal(0, code, out)
		assert.matches('probe:%s+line "db up" %(interval 1s, timeout 30s%)', out)
		assert.matches("after:%s+%-\n", out)
		assert.matches("restart:%s+no\n", out)
	end)

	it("status --json keeps the array and adds a definition per process", function()
		local code, out = u:hum({ "status", "web", "--json" })
		assert.are.equal(0, code, out)
		local arr = cjson.decode(out)
		assert.are.equal(1, #arr)
		assert.are.equal("web", arr[1].name)
		assert.is_truthy(({ running = true, ready = true })[arr[1].state])
		local d = arr[1].definition
		assert.are.same({ "sleep", "1000" }, d.cmd)
		assert.are.equal("succeeded", d.after[2].cond)
		assert.are.equal("on-failure", d.restart.policy)
		-- the server's fields stay first, in its order
		assert.matches('^%[{"name":"web","id":%d+,"kind":"service",', out)
	end)

	it("a process with autostart = false says how to start it", function()
		local p = u:proc("seed")
		assert.are.equal("pending", p.state)
		assert.are.equal("manual (autostart = false): start it with hum start seed", p.reason)
		local code, out = u:hum({ "status", "seed" })
		assert.are.equal(0, code, out)
		assert.matches("reason:%s+manual %(autostart = false%)", out)
		assert.is_nil(out:find("not started", 1, true), out)
		code, out = u:hum({ "ps" })
		assert.matches("\nseed%s+pending%s.-manual %(autostart = false%)", out)
		-- started on request, it runs as any other
		code, out = u:hum({ "start", "seed" })
		assert.are.equal(0, code, out)
		p = u:wait_state("seed", { succeeded = true })
		assert.is_nil(p.reason:find("manual", 1, true), p.reason)
	end)
end)
