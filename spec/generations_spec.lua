-- The runtime as an object per config generation (hum.runtime): it never
-- writes into the definitions it was made from, its processes can be
-- retired one by one (rt:remove -> C's hum_sup_remove -> a "removed"
-- event), its listeners go with it, and it can tell whether a registered
-- process still runs as a definition would (raw.spec_equal).  What live
-- reload and plugins stand on.
local S = require "support.hum"
local run = require "support.scenario".run

-- A deep, ordered dump of a definition table (functions and tables by
-- shape, cycles cut), to compare before and after the runtime ran.
local DUMP = [[
local function dump(v, seen, depth)
	seen, depth = seen or {}, depth or 0
	if type(v) ~= "table" then return type(v) == "function" and "fn" or tostring(v) end
	if seen[v] or depth > 6 then return "<seen>" end
	seen[v] = true
	local keys = {}
	for k in pairs(v) do keys[#keys + 1] = tostring(k) end
	table.sort(keys)
	local parts = {}
	for _, k in ipairs(keys) do
		local x = v[k]
		if x == nil then x = v[tonumber(k)] end
		parts[#parts + 1] = k .. "=" .. dump(x, seen, depth + 1)
	end
	return "{" .. table.concat(parts, ",") .. "}"
end
]]

describe("runtime generations", function()
	it("never write into the definitions they were made from", function()
		local code, out, r = run(DUMP .. [[
local db = hum.service "db" { cmd = "echo up; sleep 30", ready = hum.ready.line "up" }
local web = hum.service "web" { cmd = "sleep 30", after = { db = "ready" }, scale = 2 }
local t = hum.task "t" { cmd = "true", after = { web = "started" } }
db:on("line", "up", function() end)
-- the picture after the config's own whole-file checks, which resolve
-- `after` (they run again when the file is loaded: they are idempotent)
require("hum.define").finish()
local before = dump(db) .. dump(web) .. dump(t)
hum.on("ready", function()
	local rt = require("hum.runtime").current
	rec("instances", #rt:instances(web), rt:instances(web)[1].rt == rt)
	rec("same", dump(db) .. dump(web) .. dump(t) == before)
	hum.shutdown(0)
end)
]])
		assert.are.equal(0, code, out)
		assert.matches("instances 2 true", r)
		assert.matches("same true", r)
	end)

	it("retire one process: stopped with its grace, gone from reads, what waited for it cannot start", function()
		local code, out, r, dir = run [[
local runtime = require "hum.runtime"
local slow = hum.service "slow" { cmd = "trap 'echo bye; exit 0' TERM; echo on; while :; do sleep 0.05; done",
	ready = hum.ready.line "never printed" }
local dep = hum.service "dep" { cmd = "sleep 30", after = { slow = "ready" } }
local other = hum.service "other" { cmd = "sleep 30" }
slow:on("exit", function(ev) rec("exit", ev.name, ev.state, ev.code) end)
runtime.listen("removed", function(i) rec("removed", i.name) end)
other:on("start", function()
	-- "on" is printed once the TERM trap is set: a stop before it would
	-- kill the shell by SIGTERM (no exit code), which is not what this tests
	eventually(function()
		local l = slow:logs { n = 1 }[1]
		return slow:status().state == "running" and l and l.line == "on"
	end, "slow running, its trap set")
	local w = hum.after(0, function() rec("wait", hum.wait(slow, "ready", 60)) end)
	local rt = runtime.current
	rec("remove", rt:remove(rt.by_name.slow), rt:remove(rt.by_name.slow))
	eventually(function() return runtime.find("slow") == nil end, "slow retired")
	-- the definition stays (it is the config's); it has no instance now
	rec("get", hum.get("slow") == slow, #runtime.instances(slow), #slow:status())
	rec("dep", dep:status().state, dep:status().reason)
	rec("ps", #hum.ps())
	rec("start", hum.start("slow"))
	hum.shutdown()
end)
]]
		assert.are.equal(0, code, out) -- a removal is not a failure
		assert.matches("remove true false", r)
		assert.matches("exit slow stopped 0", r)
		assert.matches("removed slow", r)
		assert.matches("wait nil slow was removed", r)
		assert.matches("get true 0 0", r)
		assert.matches("dep pending slow was removed", r)
		assert.matches("ps 2", r)
		assert.matches("slow%s+│ bye", out) -- its TERM trap ran: stopped with its grace
		assert.matches('start nil hum.start: nothing matches "slow"', r, 1, true)
		assert.matches("dep cannot start: slow was removed", out, 1, true)
		assert.is_nil(out:match("dep: started"), out)
	end)

	it("ends hum when the last process is retired and nothing else can happen", function()
		local code, out, r = run [[
local runtime = require "hum.runtime"
local a = hum.service "a" { cmd = "sleep 30" }
a:on("start", function()
	local rt = runtime.current
	rt:remove(rt.by_name.a)
	rec("asked")
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("asked", r)
		assert.matches("a: stopped", out)
		assert.matches("hum stopped %(exit status 0%)", out)
	end)

	it("tell whether a registered process still runs as a definition would (raw.spec_equal)", function()
		local code, out, r = run [[
local raw = require "hum.raw"
local runtime = require "hum.runtime"
local web = hum.service "web" { cmd = "sleep 30", env = { A = "1" } }
web:on("start", function()
	local rt = runtime.current
	local i = rt.by_name.web
	local spec = rt:spec_of(web, 1)
	rec("same", raw.spec_equal(i.id, spec))
	spec.env[#spec.env + 1] = "B=2"
	rec("env", raw.spec_equal(i.id, spec))
	spec = rt:spec_of(web, 1)
	spec.shell = "sleep 31"
	rec("cmd", raw.spec_equal(i.id, spec))
	spec = rt:spec_of(web, 1)
	spec.grace = 7
	rec("grace", raw.spec_equal(i.id, spec))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("same true", r)
		assert.matches("env false", r)
		assert.matches("cmd false", r)
		assert.matches("grace false", r)
	end)

	it("keep their listeners to themselves; session listeners hear every generation", function()
		local code, out, r = run [[
local runtime = require "hum.runtime"
local define = require "hum.define"
local a = hum.service "a" { cmd = "sleep 30" }
local heard = { session = 0, mine = 0, other = 0, retired = 0 }
runtime.listen("state", function() heard.session = heard.session + 1 end)
a:on("start", function()
	local rt = runtime.current
	local other = runtime.new(define.defs, hum.dir)
	rt:listen("state", function() heard.mine = heard.mine + 1 end)
	other:listen("state", function() heard.other = heard.other + 1 end)
	other:listen("retire", function(g) heard.retired = heard.retired + (g == other and 1 or 0) end)
	local l = rt:listen("state", function() error("switched off") end)
	rec("off", l:off(), l:off())
	hum.get("a"):restart()
	eventually(function() return heard.mine >= 2 end, "state events")
	other:retire()
	rec("heard", heard.session > heard.mine, heard.mine >= 2, heard.other, heard.retired)
	rec("current", runtime.current == rt, other.retired)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("off true false", r)
		assert.matches("heard true true 0 1", r)
		assert.matches("current true true", r)
	end)
end)
