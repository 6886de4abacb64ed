-- `hum run TASK`: the dependency graph, parallelism, exit codes.
local S = require "support.hum"

-- Each task appends "start NAME t" and "end NAME t" (monotonic seconds) to a log.
local function graph(body)
	local dir = S.tmpdir()
	local log = dir .. "/log"
	local text = [[
local hum = require "hum"
local LOG = "@LOG@"
local function job(name, extra)
	local stamp = "$(cut -d' ' -f1 /proc/uptime)"
	local spec = { cmd = ("echo start %s %s >> %s; sleep 0.4; echo end %s %s >> %s"):format(name, stamp, LOG, name, stamp, LOG) }
	for k, v in pairs(extra or {}) do spec[k] = v end
	return hum.task(name)(spec)
end
]] .. body
	text = text:gsub("@LOG@", log)
	local file = S.config(text, dir)
	return file, dir, log
end

local function times(log)
	local t = {}
	for ev, name, at in (S.read(log) or ""):gmatch("(%a+) (%S+) (%S+)") do
		t[name] = t[name] or {}
		t[name][ev] = tonumber(at)
	end
	return t
end

describe("hum run", function()
	it("runs independent tasks in parallel and a chain in order", function()
		local file, _, log = graph [[
job("a") job("b")
job("c", { after = { "a" } })
job("all", { after = { "b", "c" } })
]]
		local code, out = S.run({ "run", "-f", file, "all" })
		assert.are.equal(0, code, out)
		local t = times(log)
		-- a and b overlap
		assert.is_true(t.a.start < t.b["end"] and t.b.start < t.a["end"], "a and b should overlap")
		-- c starts after a ends; all after b and c
		assert.is_true(t.c.start >= t.a["end"])
		assert.is_true(t.all.start >= t.c["end"] and t.all.start >= t.b["end"])
	end)

	it("honours --jobs 1", function()
		local file, _, log = graph [[
job("a") job("b")
job("all", { after = { "a", "b" } })
]]
		local code, out = S.run({ "run", "-f", file, "-j", "1", "all" })
		assert.are.equal(0, code, out)
		local t = times(log)
		assert.is_true(t.b.start >= t.a["end"] or t.a.start >= t.b["end"], "a and b must not overlap")
	end)

	it("stops at the first failure and exits with the failing task's code", function()
		local file, _, log = graph [[
hum.task "bad" { cmd = "exit 7" }
job("slow")
job("after_bad", { after = { "bad" } })
job("all", { after = { "after_bad", "slow" } })
]]
		local code, out = S.run({ "run", "-f", file, "all" })
		assert.are.equal(7, code, out)
		assert.matches("task bad failed", out)
		local t = times(log)
		assert.is_nil(t.after_bad)
		assert.is_nil(t.all)
	end)

	it("with --keep-going runs what does not depend on the failure", function()
		local file, _, log = graph [[
hum.task "bad" { cmd = "exit 5" }
job("other")
job("after_bad", { after = { "bad" } })
job("after_other", { after = { "other" } })
job("all", { after = { "after_bad", "after_other" } })
]]
		local code, out = S.run({ "run", "-f", file, "-k", "all" })
		assert.are.equal(5, code, out)
		local t = times(log)
		assert.is_truthy(t.after_other and t.after_other["end"])
		assert.is_nil(t.after_bad)
	end)

	it("starts the services a task needs and stops them afterwards", function()
		local dir = S.tmpdir()
		local file = S.config(([[
local hum = require "hum"
hum.service "db" { cmd = "trap 'echo db-stopped >> %s/log; exit 0' TERM; echo db-ready; while :; do sleep 0.05; done", ready = hum.ready.line "db%%-ready" }
hum.task "test" { cmd = "echo testing >> %s/log", after = { db = "ready" } }
]]):format(dir, dir), dir)
		local code, out = S.run({ "run", "-f", file, "test" })
		assert.are.equal(0, code, out)
		assert.are.equal("testing\ndb-stopped\n", S.read(dir .. "/log"))
	end)

	it("passes arguments after -- to the task", function()
		local dir = S.tmpdir()
		local file = S.config([[
local hum = require "hum"
hum.task "echo" { cmd = { "echo", "args:" } }
hum.task "sh" { cmd = "echo sh:" }
]], dir)
		local code, out = S.run({ "run", "-f", file, "echo", "--", "a b", "c" })
		assert.are.equal(0, code, out)
		assert.matches("args: a b c", out)
		code, out = S.run({ "run", "-f", file, "sh", "--", "it's", "x" })
		assert.are.equal(0, code, out)
		assert.matches("sh: it's x", out)
	end)

	it("lists tasks with their descriptions", function()
		local file = S.config([[
local hum = require "hum"
hum.task "build" { cmd = "true", desc = "compile everything" }
hum.task "lint" { cmd = "true" }
hum.service "web" { cmd = "true" }
]])
		local code, out = S.run({ "run", "-f", file, "--list" })
		assert.are.equal(0, code, out)
		assert.matches("build%s+compile everything", out)
		assert.matches("lint", out)
		assert.is_nil(out:find("web"))
	end)

	it("rejects unknown tasks and services with exit code 2", function()
		local file = S.config([[
local hum = require "hum"
hum.service "web" { cmd = "true" }
]])
		local code, out = S.run({ "run", "-f", file, "nope" })
		assert.are.equal(2, code, out)
		assert.matches('no task "nope"', out)
		code, out = S.run({ "run", "-f", file, "web" })
		assert.are.equal(2, code, out)
		assert.matches("is a service", out)
	end)
end)
