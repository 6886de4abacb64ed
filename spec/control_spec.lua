-- Controlling processes from a reaction: p:start(), p:signal(), hum.start,
-- hum.restart and hum.stop by name, group and glob, processes in two groups,
-- and the handle of one replica of a scaled service.
local run = require "support.scenario".run

describe("control from a reaction", function()
	it("starts a process with p:start() and signals its group with p:signal()", function()
		local code, out, r = run [[
local s = hum.service "s" {
	cmd = "trap 'echo got-usr1' USR1; echo up; while :; do sleep 0.05; done",
	ready = hum.ready.line "up", autostart = false,
}
local t = hum.task "t" { cmd = "true" }
s:on("line", "got%-usr1", function(ev) rec("signalled", ev.name) hum.shutdown(0) end)
t:on("exit", function()
	rec("before", s:status().state, s:status().pid)
	rec("start", s:start())
	rec("ready", hum.wait(s, "ready", 20))
	rec("signal", s:signal("USR1"))
	rec("bad-signal", pcall(s.signal, s, "NOPE"))
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("before pending 0\n", r)
		assert.matches("start true\nready true\nsignal true\n", r)
		assert.matches("bad%-signal false [^\n]*unknown signal \"NOPE\"", r)
		assert.matches("signalled s", r)
	end)

	it("starts, restarts and stops by group name and by glob with hum.start/restart/stop", function()
		local code, out, r = run [[
local a = hum.service "web-a" { cmd = "sleep 100", group = "web", autostart = false }
local b = hum.service "web-b" { cmd = "sleep 100", group = "web", autostart = false }
local w = hum.service "worker" { cmd = "sleep 100", autostart = false }
local t = hum.task "t" { cmd = "true" }
local starts = {}
hum.on("start", function(ev) starts[ev.name] = (starts[ev.name] or 0) + 1 end)
local function states() return a:status().state .. "," .. b:status().state .. "," .. w:status().state end
t:on("exit", function()
	rec("start-group", hum.start("web"))
	eventually(function() return a:status().ready and b:status().ready end, "group ready")
	rec("after-start", states())
	local pa, pb = a:status().pid, b:status().pid
	rec("restart-glob", hum.restart("web-?"))
	eventually(function() return starts["web-a"] == 2 and starts["web-b"] == 2 and a:status().ready and b:status().ready end, "restarted")
	rec("new-pids", a:status().pid ~= pa and b:status().pid ~= pb, starts.worker)
	rec("stop-glob", hum.stop("w*"))
	rec("stopped", hum.wait(a, "stopped", 20), hum.wait(b, "stopped", 20), hum.wait(w, "stopped", 20))
	rec("after-stop", states())
	rec("no-match", hum.start("nothing-*"))
	rec("bad-pattern", pcall(hum.start, 42))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("start%-group 2\n", r)
		assert.matches("after%-start ready,ready,pending\n", r)
		assert.matches("restart%-glob 2\n", r)
		assert.matches("new%-pids true nil\n", r)
		assert.matches("stop%-glob 3\n", r)
		assert.matches("stopped true true true\n", r)
		assert.matches("after%-stop stopped,stopped,stopped\n", r)
		assert.matches("no%-match nil hum%.start: nothing matches \"nothing%-%*\"\n", r)
		assert.matches("bad%-pattern false [^\n]*expected a name, group or glob", r)
		assert.is_nil(r:find("gave%-up"))
	end)

	it("starts and stops a process that is in two groups with either group", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100", groups = { "g1", "g2" }, autostart = false }
local b = hum.service "b" { cmd = "sleep 100", group = "g1", autostart = false }
local c = hum.service "c" { cmd = "sleep 100", autostart = false }
hum.group "g2" { c }
local t = hum.task "t" { cmd = "true" }
local function states()
	local o = {}
	for _, p in ipairs { a, b, c } do o[#o + 1] = p.name .. "=" .. p:status().state end
	return table.concat(o, ",")
end
t:on("exit", function()
	rec("groups", a:status().groups, b:status().groups, c:status().groups)
	rec("start-g1", hum.start("g1"))
	rec("waited", hum.wait(a, "ready", 20), hum.wait(b, "ready", 20))
	rec("s1", states())
	rec("stop-g2", hum.stop("g2"))
	rec("waited", hum.wait(a, "stopped", 20))
	rec("s2", states())
	rec("start-g2", hum.start("g2"))
	rec("waited", hum.wait(a, "ready", 20), hum.wait(c, "ready", 20))
	rec("s3", states())
	rec("stop-g1", hum.stop("g1"))
	rec("waited", hum.wait(a, "stopped", 20), hum.wait(b, "stopped", 20))
	rec("s4", states())
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("groups g1,g2 g1 g2\n", r)
		assert.matches("start%-g1 2\n", r)
		assert.matches("s1 a=ready,b=ready,c=pending\n", r)
		assert.matches("stop%-g2 2\n", r)
		assert.matches("s2 a=stopped,b=ready,c=stopped\n", r)
		assert.matches("start%-g2 2\n", r)
		assert.matches("s3 a=ready,b=ready,c=ready\n", r)
		assert.matches("stop%-g1 2\n", r)
		assert.matches("s4 a=stopped,b=stopped,c=ready\n", r)
		assert.is_nil(r:find("waited [^\n]*nil"))
	end)

	it("gives a replica of a scaled service its own handle with hum.get(\"name.N\")", function()
		local code, out, r = run [[
local w = hum.service "w" { cmd = "echo replica $HUM_REPLICA; sleep 100", scale = 2, ready = hum.ready.line "replica" }
hum.on("ready", function()
	local w2 = hum.get("w.2")
	rec("get", w2.name, w2.kind, #w2.instances, w2:status().name, tostring(w2))
	rec("missing", hum.get("w.3"), hum.get("nope"))
	rec("stop", w2:stop(), hum.wait(w2, "stopped", 20))
	local st = w:status()
	rec("states", #st, st[1].name, st[1].state, st[2].name, st[2].state)
	local logs = w2:logs()
	rec("logs", #logs, logs[1].name, logs[1].line)
	rec("start", w2:start(), hum.wait(w2, "ready", 20), hum.get("w.1"):status().state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("get w%.2 service 1 w%.2 hum%.service%(\"w%.2\"%)\n", r)
		assert.matches("missing nil nil\n", r)
		assert.matches("stop true true\n", r)
		assert.matches("states 2 w%.1 ready w%.2 stopped\n", r)
		assert.matches("logs 1 w%.2 replica 2\n", r)
		assert.matches("start true true ready\n", r)
	end)
end)
