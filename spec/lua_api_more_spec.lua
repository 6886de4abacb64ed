-- The Lua API, continued: control from reactions, hooks, handles, helpers'
-- options, waiting on replicas, and the edges of conditions and probes.
--
-- Reactions wait on events (hum.wait) or poll a condition with a generous
-- deadline (`eventually`), never on a fixed delay.
local S = require "support"

-- Prepended to every scenario: eventually(fn, what) (spec/support.lua).
local PRELUDE = S.EVENTUALLY

local function run(body, args, opts)
	local file, dir, results = S.scenario(PRELUDE .. body)
	local a = { "up", "-f", file }
	for _, x in ipairs(args or {}) do a[#a + 1] = x end
	local code, out = S.run(a, opts)
	return code, out, S.read(results) or "", dir
end

-- Lines of the results file as an array.
local function lines(r)
	local t = {}
	for l in r:gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

local function count(r, pattern)
	local n = 0
	for _ in r:gmatch(pattern) do n = n + 1 end
	return n
end

-- A TCP listener on host:port that prints "listening" once bound.
local function tcp_server(host, port)
	local a, b, c, d = host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
	local addr = tonumber(a) + tonumber(b) * 256 + tonumber(c) * 65536 + tonumber(d) * 16777216
	return ([[luajit -e '
local ffi = require "ffi"
ffi.cdef[=[int socket(int,int,int); int bind(int,const void*,unsigned); int listen(int,int);
int accept(int,void*,void*); int close(int);
struct sa { unsigned short fam; unsigned short port; unsigned int addr; char z[8]; };
int setsockopt(int,int,int,const void*,unsigned);]=]
local s = ffi.C.socket(2, 1, 0)
ffi.C.setsockopt(s, 1, 2, ffi.new("int[1]", 1), 4)
local a = ffi.new("struct sa", 2, bit.bor(bit.rshift(%d, 8), bit.lshift(bit.band(%d, 255), 8)), %d)
assert(ffi.C.bind(s, a, 16) == 0) ffi.C.listen(s, 16)
io.write("listening\n") io.flush()
while true do local c = ffi.C.accept(s, nil, nil) ffi.C.close(c) end']]):format(port, port, addr)
end

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

describe("hooks for every process", function()
	it("runs hum.on(\"start\") and hum.on(\"state\") for every process, in order", function()
		local code, out, r = run [[
hum.task "a" { cmd = "true" }
hum.task "b" { cmd = "exit 3" }
hum.on("start", function(ev) rec("start", ev.name, ev.pid > 0, ev.restarts) end)
hum.on("state", function(ev) rec("state", ev.name, ev.old, ev.state) end)
]]
		assert.are.equal(1, code, out)
		assert.matches("start a true 0\n", r)
		-- "state" fires on changes only, from the first start to the exit
		assert.matches("start b true 0\n", r)
		local seq = {}
		for name, old, new in r:gmatch("state (%a) (%a+) (%a+)\n") do
			seq[name] = (seq[name] and seq[name] .. " " or "") .. old .. ">" .. new
		end
		assert.are.equal("pending>running running>ready ready>succeeded", seq.a)
		assert.are.equal("pending>running running>ready ready>failed", seq.b)
	end)

	it("runs hum.on(\"shutdown\") with the exit code, for hum.shutdown and for SIGTERM", function()
		local code, out, r = run [[
hum.service "s" { cmd = "sleep 100" }
hum.on("shutdown", function(ev) rec("shutdown", ev.code) end)
hum.on("ready", function() hum.shutdown(3) end)
]]
		assert.are.equal(3, code, out)
		assert.are.equal("shutdown 3\n", r)

		local file, dir, results = S.scenario [[
local s = hum.service "s" { cmd = "sleep 100" }
hum.on("shutdown", function(ev) rec("shutdown", ev.code, s:status().state) end)
hum.on("ready", function() rec("ready") end)
]]
		local h = S.start({ "up", "-f", file }, { dir = dir })
		finally(function() h:close() end)
		S.wait(function() return (S.read(results) or ""):find("ready") end, 30, "s ready")
		h:signal("TERM")
		assert.are.equal(143, h:wait_exit(30))
		-- the hook runs when the shutdown begins, before anything is stopped
		assert.matches("shutdown 143 ready\n", S.read(results))
	end)
end)

describe("handles", function()
	it("stops a reaction after :off(), without skipping the reactions after it", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo tick 1; echo tick 2; echo tick 3" }
local once
once = t:on("line", "tick (%d)", function(ev, n) rec("once", n, once:off(), once:off()) end)
t:on("line", "tick (%d)", function(ev, n) rec("every", n) end)
local hook = hum.on("exit", function(ev) rec("hook", ev.name) end)
rec("hook-off", hook:off())
]]
		assert.are.equal(0, code, out)
		assert.matches("once 1 true false\n", r)
		assert.are.equal(1, count(r, "once"))
		assert.are.equal(3, count(r, "every %d"))
		assert.matches("every 1\nevery 2\nevery 3\n", r)
		assert.is_nil(r:find("hook t"))
	end)

	it("reports timers as active until they fire or are cancelled", function()
		local code, out, r = run [[
local early_fired = false
local early = hum.after(0, function() early_fired = true end)
rec("load", early:active())
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	eventually(function() return early_fired end, "early timer")
	rec("early-after-firing", early:active())
	local fired = false
	local once = hum.after(0.05, function(h) fired = true rec("inside", h:active()) end)
	rec("after-before", once:active())
	eventually(function() return fired end, "one-shot")
	rec("after-fired", once:active())
	local long = hum.after(3600, function() rec("long fired") end)
	rec("long", long:active())
	long:cancel()
	rec("long-cancelled", long:active())
	local n = 0
	local ev = hum.every(0.02, function(h) n = n + 1 end)
	eventually(function() return n >= 3 end, "every")
	rec("every-running", ev:active())
	ev:cancel()
	rec("every-cancelled", ev:active())
	local before = n
	-- a cancelled repeating timer never runs again: wait out several periods
	local probe = false
	hum.after(0.2, function() probe = true end)
	eventually(function() return probe end, "later timer")
	rec("every-stopped", n == before)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("load true\n", r)
		assert.matches("early%-after%-firing false\n", r)
		assert.matches("after%-before true\ninside false\nafter%-fired false\n", r)
		assert.matches("long true\nlong%-cancelled false\n", r)
		assert.matches("every%-running true\nevery%-cancelled false\n", r)
		assert.matches("every%-stopped true\n", r)
		assert.is_nil(r:find("long fired"))
		assert.is_nil(r:find("gave%-up"))
	end)

	it("runs each timer's own function when several expire in one loop iteration", function()
		-- A is made before B but expires after it; the reaction keeps the
		-- loop busy until both (and the first sleep) have expired, so their
		-- events are queued together and a timer made while one is handled
		-- must not take the id of one whose event is still queued
		local code, out, r = run [[
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	local a_fired = false
	hum.after(0.2, function() a_fired = true rec("A") end)
	hum.after(0.1, function() rec("B") hum.after(60, function() rec("C") end) end)
	local t0 = hum.clock()
	while hum.clock() - t0 < 0.4 do end
	while not a_fired and hum.clock() - t0 < 10 do
		local s0 = hum.clock()
		hum.sleep(0.05)
		if hum.clock() - s0 < 0.045 then rec("short sleep", hum.clock() - s0) end
	end
	rec("done", a_fired)
end)
]]
		assert.are.equal(0, code, out)
		assert.are.equal("B\nA\ndone true\n", r)
	end)
end)

describe("helpers", function()
	it("runs hum.exec in a given cwd with added and removed variables", function()
		local dir = S.tmpdir()
		os.execute("mkdir " .. S.q(dir .. "/sub"))
		local code, out, r = run(([[
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	local res = hum.exec("pwd; echo \"foo=$FOO n=$N home=${HOME-unset} path=${PATH:+set}\"",
		{ cwd = %q, env = { FOO = "bar", N = 7, HOME = false } })
	rec("code", res.code)
	for l in res.stdout:gmatch("[^\n]+") do rec("out", l) end
	local plain = hum.exec({ "sh", "-c", "echo ${FOO-unset}" })
	for l in plain.stdout:gmatch("[^\n]+") do rec("plain", l) end
	rec("badcwd", hum.exec({ "true" }, { cwd = "/nonexistent/dir" }))
	rec("nobin", hum.exec({ "/nonexistent/binary" }, { cwd = "/" }))
end)
]]):format(dir .. "/sub"), {}, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.matches("code 0\n", r)
		assert.matches("out " .. dir:gsub("%p", "%%%0") .. "/sub\n", r)
		assert.matches("out foo=bar n=7 home=unset path=set\n", r)
		assert.matches("plain unset\n", r)
		assert.matches("badcwd nil chdir /nonexistent/dir: No such file or directory\n", r)
		assert.matches("nobin nil exec /nonexistent/binary: No such file or directory\n", r)
	end)

	it("filters p:logs by pattern and stream, then keeps the last n", function()
		-- stdout and stderr are two pipes: their lines keep their order
		-- within a stream, not across streams
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo out-a; echo err-a >&2; echo out-b; echo err-b >&2; echo other" }
local function show(tag, list, sorted)
	local o = {}
	for _, l in ipairs(list) do o[#o + 1] = l.stream .. ":" .. l.line .. ":" .. l.name end
	if sorted then table.sort(o) end
	rec(tag, table.concat(o, ","))
end
t:on("exit", function()
	show("all", t:logs(), true)
	show("grep", t:logs { grep = "%-a$" }, true)
	show("err", t:logs { stream = "err" })
	show("out-grep", t:logs { stream = "out", grep = "^out" })
	show("out-grep-1", t:logs { stream = "out", grep = "^out", n = 1 })
	show("err-1", t:logs { stream = "err", n = 1 })
	show("none", t:logs { stream = "err", grep = "other" })
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("all err:err%-a:t,err:err%-b:t,out:other:t,out:out%-a:t,out:out%-b:t\n", r)
		assert.matches("grep err:err%-a:t,out:out%-a:t\n", r)
		assert.matches("err err:err%-a:t,err:err%-b:t\n", r)
		assert.matches("out%-grep out:out%-a:t,out:out%-b:t\n", r)
		assert.matches("out%-grep%-1 out:out%-b:t\n", r)
		assert.matches("err%-1 err:err%-b:t\n", r)
		assert.matches("none \n", r)
	end)

	it("waits for \"started\" and for the next \"exit\" with hum.wait", function()
		local code, out, r = run [[
local s = hum.service "s" { cmd = "sleep 100", autostart = false }
local k = hum.task "k" { cmd = "sleep 0.2; exit 3", autostart = false }
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	s:start()
	rec("started", hum.wait(s, "started", 20), s:status().state ~= "pending", s:status().pid > 0)
	rec("started-again", hum.wait(s, "started", 0))
	k:start()
	local ev = hum.wait(k, "exit", 20)
	rec("exit", ev.name, ev.state, ev.code, k:status().state)
	s:stop()
	local ev2 = hum.wait(s, "exit", 20)
	rec("exit", ev2.name, ev2.state, ev2.signal)
	rec("exit-timeout", hum.wait(s, "exit", 0.1))
	rec("bad", pcall(hum.wait, s, "bogus"))
end)
]]
		assert.are.equal(1, code, out) -- k failed
		assert.matches("started true true true\n", r)
		assert.matches("started%-again true\n", r)
		assert.matches("exit k failed 3 failed\n", r)
		assert.matches("exit s stopped TERM\n", r)
		assert.matches("exit%-timeout nil timeout\n", r)
		assert.matches("bad false [^\n]*unknown condition \"bogus\"", r)
	end)
end)

describe("hum.wait on a scaled process", function()
	it("waits until every replica is ready", function()
		local code, out, r = run [[
local w = hum.service "w" {
	cmd = "if [ \"$HUM_REPLICA\" = 2 ]; then sleep 0.5; fi; echo up $HUM_REPLICA; sleep 100",
	scale = 2, ready = hum.ready.line "up", autostart = false,
}
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	w:start()
	rec("ready", hum.wait(w, "ready", 20))
	local st = w:status()
	rec("states", st[1].state, st[2].state)
	w:stop()
	rec("stopped", hum.wait(w, "stopped", 20))
	st = w:status()
	rec("states", st[1].state, st[2].state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("ready true\nstates ready ready\n", r)
		assert.matches("stopped true\nstates stopped stopped\n", r)
	end)

	it("returns every replica's exit event, and times out while one is missing", function()
		local code, out, r = run [[
local w = hum.task "w" { cmd = "exit $HUM_REPLICA", scale = 3, autostart = false }
local s = hum.service "s" { cmd = "if [ \"$HUM_REPLICA\" = 2 ]; then exec sleep 100; fi; exit 0", scale = 2, autostart = false }
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	w:start()
	local evs = hum.wait(w, "exit", 20)
	local o = {}
	for k, ev in ipairs(evs) do o[k] = ev.name .. "=" .. ev.code end
	rec("exits", #evs, table.concat(o, ","))
	s:start()
	-- s.2 never exits: the wait ends at its timeout whatever s.1 does
	rec("one-exits", hum.wait(s, "exit", 1))
	rec("s.1", hum.wait(hum.get("s.1"), "succeeded", 20), hum.get("s.2"):status().state)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("exits 3 w%.1=1,w%.2=2,w%.3=3\n", r)
		assert.matches("one%-exits nil timeout\ns%.1 true ready\n", r)
	end)
end)

describe("conditions and probes", function()
	it("times out a line probe that never matches and leaves dependents pending", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "echo booting; sleep 100", ready = hum.ready.line("never", { timeout = 0.5 }) }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "ready" } }
a:on("start", function()
	eventually(function() return b:status().reason == "a never became ready" end, "b blocked")
	local sa, sb = a:status(), b:status()
	rec("a", sa.state, sa.ready, sa.reason)
	rec("b", sb.state, sb.pid, sb.reason)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("a running false not ready: line probe gave up after 0%.5s\n", r)
		assert.matches("b pending 0 a never became ready\n", r)
		assert.matches("a: readiness probe timed out after 0%.5s", out)
	end)

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

	it("reports the old run's exit when a running process is restarted", function()
		local code, out, r = run [[
local s = hum.service "s" { cmd = "exec sleep 100" }
local n = 0
s:on("exit", function(ev) rec("exit", ev.state, ev.signal) end)
s:on("start", function(ev)
	n = n + 1
	if n == 1 then
		s:restart()
	else
		rec("restarted", ev.restarts)
		hum.shutdown(0)
	end
end)
]]
		assert.are.equal(0, code, out)
		local l = lines(r)
		assert.are.equal("exit stopped TERM", l[1])
		assert.are.equal("restarted 1", l[2])
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

	it("passes a tcp probe against an explicit host", function()
		local port = 20000 + math.random(20000)
		local code, out, r = run(([[
local srv = hum.service "srv" { cmd = %q, ready = hum.ready.tcp(%d, "127.0.0.2") }
local other = hum.service "other" { cmd = "sleep 100", after = { srv = "started" },
	ready = hum.ready.tcp(%d, { interval = 0.05, timeout = 1 }) }
srv:on("ready", function() rec("ready", "srv") end)
other:on("start", function()
	eventually(function() return other:status().reason:find("gave up") end, "default host refused")
	rec("other", other:status().state, other:status().reason)
	hum.shutdown(0)
end)
]]):format(tcp_server("127.0.0.2", port), port, port))
		assert.are.equal(0, code, out)
		assert.matches("ready srv\n", r)
		-- only 127.0.0.2 listens: the default host 127.0.0.1 is refused
		assert.matches("other running not ready: tcp probe gave up after 1s %(connect: Connection refused%)", r)
	end)
end)

describe("readiness retries", function()
	-- interval 0.2: each exec check may take 0.8 s before it counts as failed
	it("gives up after `retries` consecutive failed checks; without retries only the timeout ends it", function()
		local code, out, r, dir = run [[
local a = hum.service "a" { cmd = "sleep 100",
	ready = hum.ready.exec("echo x >> a.count; exit 1", { interval = 0.2, retries = 3, timeout = 60 }) }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "ready" } }
-- z fails 5 checks, then passes: with no retries set, failures only wait for the timeout
local z = hum.service "z" { cmd = "sleep 100",
	ready = hum.ready.exec("echo x >> z.count; [ $(wc -l < z.count) -ge 6 ]", { interval = 0.2 }) }
-- y has a budget of retries that it does not use up
local y = hum.service "y" { cmd = "sleep 100",
	ready = hum.ready.exec("echo x >> y.count; [ $(wc -l < y.count) -ge 3 ]", { interval = 0.2, retries = 3 }) }
hum.on("state", function(ev)
	if ev.name == "a" and ev.state == "running" then
		eventually(function() return b:status().reason == "a never became ready" end, "b blocked")
		rec("a", a:status().state, a:status().reason)
		rec("b", b:status().state, b:status().reason)
		rec("z", hum.wait(z, "ready", 30))
		rec("y", hum.wait(y, "ready", 30))
		hum.shutdown(0)
	end
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("a running not ready: exec probe failed 3 times in a row %(exit code 1%)\n", r)
		assert.matches("b pending a never became ready\n", r)
		assert.matches("z true\ny true\n", r)
		assert.matches("a: readiness probe failed 3 times in a row", out)
		-- no check after giving up, though z went on checking for longer
		assert.are.equal("x\nx\nx\n", S.read(dir .. "/a.count"))
		assert.are.equal(6, count(S.read(dir .. "/z.count"), "x"))
		assert.are.equal(3, count(S.read(dir .. "/y.count"), "x"))
	end)

	it("still gives up at the timeout when retries are not used up", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100",
	ready = hum.ready.exec({ "false" }, { interval = 0.1, retries = 1000, timeout = 0.5 }) }
a:on("start", function()
	eventually(function() return a:status().reason:find("gave up") end, "timeout")
	rec("a", a:status().state, a:status().reason)
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("a running not ready: exec probe gave up after 0%.5s", r)
	end)
end)
