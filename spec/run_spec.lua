-- What ends `hum run`: a target that can never start (the services it
-- started are stopped, the cause is named, the exit code is 1), and `hum
-- run` inside a running `hum up` of the same project (its services reused,
-- the task's output and exit code, Ctrl-C/TERM stops the task only).
local H = require "support.socket"
local S = H.S

local function marker() return ("humrun%d"):format(math.random(1e9)) end

describe("hum run gives up", function()
	it("when the target can never start: stops the services it started and exits 1 naming the cause", function()
		local m = marker()
		local file, dir = S.config(([[
local hum = require "hum"
hum.env { MARK = %q }
hum.service "db" { cmd = "sleep 0.3; echo crashing; exit 3", ready = hum.ready.line "accepting connections" }
hum.service "cache" { cmd = "exec sleep 1000" }
hum.task "test" { cmd = "echo ran > ran", after = { "db", "cache" } }
]]):format(m))
		local t0 = S.now()
		local code, out = S.run({ "run", "-f", file, "test" }, { cwd = dir, timeout = 60 })
		assert.are.equal(1, code, out)
		assert.is_true(S.now() - t0 < 30, out)
		assert.matches("task test can never start: db failed", out)
		assert.is_nil(S.read(dir .. "/ran"))
		S.wait(function() return #S.pids_with_env("MARK=" .. m) == 0 end, 20, "cache stopped")
	end)

	it("with --keep-going, once the other tasks of the graph are done", function()
		local file, dir = S.config([[
local hum = require "hum"
hum.task "broken" { cmd = "exit 4" }
hum.task "slow" { cmd = "sleep 0.5; echo slow-done > slow.done" }
hum.task "all" { cmd = "true", after = { "broken", "slow" } }
]])
		local code, out = S.run({ "run", "-f", file, "-k", "all" }, { cwd = dir, timeout = 60 })
		assert.are.equal(4, code, out) -- the failed task's code
		assert.are.equal("slow-done\n", S.read(dir .. "/slow.done"))
		assert.matches("task all can never start: broken failed", out)
	end)
end)

describe("hum run inside a running hum up", function()
	local u
	setup(function()
		u = H.up([[
local hum = require "hum"
hum.service "db" { cmd = "echo start >> db.starts; echo db-ready; exec sleep 1000", ready = hum.ready.line "db%-ready" }
hum.service "queue" { cmd = "echo start >> queue.starts; exec sleep 1000", autostart = false }
hum.task "migrate" { cmd = "echo migrating; echo warn >&2", after = { db = "started" }, autostart = false }
hum.task "bad" { cmd = "echo bad-now; exit 7", after = { db = "ready", queue = "started" }, autostart = false }
hum.service "broken" { cmd = "sleep 0.2; exit 2", ready = hum.ready.line "never printed", autostart = false }
hum.task "never" { cmd = "true", after = { broken = "ready" }, autostart = false }
hum.task "long" { cmd = "echo long-start; exec sleep 1000", after = { "db" }, autostart = false }
]])
		u:wait_state("db", "ready")
	end)
	teardown(function() u:close() end)

	it("reuses its services, prints the task's output and exits with its code", function()
		local code, out = u:hum { "run", "migrate" }
		assert.are.equal(0, code, out)
		assert.matches("migrate │ migrating\n", out)
		assert.matches("migrate ! warn\n", out)
		code, out = u:hum { "run", "bad" }
		assert.are.equal(7, code, out)
		assert.matches("bad │ bad%-now\n", out)
		-- db was reused, the missing queue started once
		assert.are.equal("start\n", S.read(u.dir .. "/db.starts"))
		assert.are.equal("start\n", S.read(u.dir .. "/queue.starts"))
		-- a task that ran before runs again
		code, out = u:hum { "run", "migrate" }
		assert.are.equal(0, code, out)
		local _, n = out:gsub("migrating", "")
		assert.are.equal(1, n, out)
		assert.are.equal("ready", u:proc("db").state)
		assert.is_nil(u.bg:code())
	end)

	it("exits 1 naming the cause when the task can never start", function()
		local code, out = u:hum { "run", "never" }
		assert.are.equal(1, code, out)
		assert.matches("never cannot start: broken failed", out)
		assert.is_nil(u.bg:code())
	end)

	it("refuses arguments for the running hum's task", function()
		local code, out = u:hum { "run", "migrate", "--", "x" }
		assert.are.equal(2, code, out)
	end)

	it("stops the task, not the environment, when interrupted", function()
		local bg = S.start({ "run", "-f", u.file, "long" }, { cwd = u.dir })
		bg:wait_output("long%-start")
		u:wait_state("long", { running = true, ready = true })
		bg:signal("TERM")
		assert.are.equal(143, bg:wait_exit(30))
		u:wait_state("long", "stopped")
		assert.are.equal("ready", u:proc("db").state)
		assert.is_nil(u.bg:code())
	end)
end)
