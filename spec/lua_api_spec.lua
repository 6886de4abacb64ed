-- The Lua API: dependencies, readiness probes, reactions and helpers.
local S = require "support"

local scenario = S.scenario

local function run(body, args, opts)
	local file, dir, results = scenario(body)
	local a = { "up", "-f", file }
	for _, x in ipairs(args or {}) do a[#a + 1] = x end
	local code, out = S.run(a, opts)
	return code, out, S.read(results) or "", dir
end

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
local db = hum.service "db" { cmd = "trap 'echo db-term; exit 0' TERM; while :; do sleep 0.05; done" }
local api = hum.service "api" { cmd = "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done", after = { db = "ready" } }
local web = hum.service "web" { cmd = "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done", after = { api = "ready" } }
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

describe("readiness probes", function()
	it("passes a line probe and hands its captures to ready reactions", function()
		local code, out, r = run [[
local w = hum.service "w" { cmd = "echo 'ready on http://127.0.0.1:9999'; sleep 100", ready = hum.ready.line "ready on (http://%S+)" }
w:on("ready", function(ev) rec("ready", ev.captures[1]) hum.shutdown(0) end)
]]
		assert.are.equal(0, code, out)
		assert.matches("ready http://127.0.0.1:9999", r)
	end)

	it("passes tcp and http probes against a real listener, exec probes by exit code", function()
		local port = 20000 + math.random(20000)
		local server = ([[luajit -e '
local ffi = require "ffi"
ffi.cdef[=[int socket(int,int,int); int bind(int,const void*,unsigned); int listen(int,int);
int accept(int,void*,void*); long write(int,const void*,unsigned long); long read(int,void*,unsigned long); int close(int);
struct sa { unsigned short fam; unsigned short port; unsigned int addr; char z[8]; };
int setsockopt(int,int,int,const void*,unsigned);]=]
local s = ffi.C.socket(2, 1, 0)
ffi.C.setsockopt(s, 1, 2, ffi.new("int[1]", 1), 4)
local a = ffi.new("struct sa", 2, bit.bor(bit.rshift(%d, 8), bit.lshift(bit.band(%d, 255), 8)), 0x0100007f)
assert(ffi.C.bind(s, a, 16) == 0) ffi.C.listen(s, 16)
io.write("listening\n") io.flush()
local buf = ffi.new("char[4096]")
while true do local c = ffi.C.accept(s, nil, nil) ffi.C.read(c, buf, 4096)
local r = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n" ffi.C.write(c, r, #r) ffi.C.close(c) end']]):format(port, port)
		local code, out, r = run(([[
local srv = hum.service "srv" { cmd = %q, ready = hum.ready.tcp(%d) }
local web = hum.service "web" { cmd = "sleep 100", after = { srv = "ready" }, ready = hum.ready.http("http://127.0.0.1:%d/health") }
local ex = hum.service "ex" { cmd = "sleep 100", after = { web = "ready" }, ready = hum.ready.exec { "sh", "-c", "exit 0" } }
for _, p in ipairs { srv, web, ex } do p:on("ready", function(ev) rec("ready", ev.name) end) end
hum.on("ready", function() hum.shutdown(0) end)
]]):format(server, port, port))
		assert.are.equal(0, code, out)
		assert.matches("ready srv\nready web\nready ex", r)
	end)

	it("times out a probe that never passes and blocks dependents", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100", ready = hum.ready.tcp(1, { interval = 0.1, timeout = 0.5 }) }
local b = hum.service "b" { cmd = "sleep 100", after = { a = "ready" } }
local c = hum.service "c" { cmd = "sleep 100", ready = hum.ready.exec({ "false" }, { interval = 0.1, timeout = 0.5 }) }
local d = hum.service "d" { cmd = "sleep 100", ready = hum.ready.http("http://127.0.0.1:1/", { interval = 0.1, timeout = 0.5 }) }
hum.after(1.5, function()
	for _, p in ipairs { a, b, c, d } do local st = p:status() rec(st.name, st.state, st.reason) end
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("a running not ready: tcp probe gave up after 0.5s %(connect: Connection refused%)", r)
		assert.matches("b pending a never became ready", r)
		assert.matches("c running not ready: exec probe gave up", r)
		assert.matches("d running not ready: http probe gave up", r)
	end)

	it("restarts a process whose liveness probe keeps failing", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100", liveness = hum.ready.exec({ "false" }, { interval = 0.1, retries = 2 }) }
a:on("start", function(ev)
	rec("start", ev.restarts)
	if ev.restarts >= 1 then hum.shutdown(0) end
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("start 0\nstart 1", r)
	end)
end)

describe("reactions", function()
	it("runs line reactions only on matching lines, with captures and the stream", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo 'user=ann id=7'; echo 'nothing'; echo 'user=bob id=9' >&2" }
t:on("line", "user=(%a+) id=(%d+)", function(ev, user, id) rec("match", user, id, ev.stream, ev.captures[2]) end)
t:on("line", { "user", stream = "err" }, function(ev) rec("err-only", ev.line) end)
]]
		assert.are.equal(0, code, out)
		assert.matches("match ann 7 out 7", r)
		assert.matches("match bob 9 err 9", r)
		assert.matches("err%-only user=bob id=9", r)
		assert.is_nil(r:find("nothing"))
		assert.is_nil(r:find("err%-only user=ann"))
	end)

	it("sleeps, waits and execs inside a reaction without blocking the loop", function()
		local code, out, r = run [[
local slow = hum.service "slow" { cmd = "sleep 0.5; echo go; sleep 100", ready = hum.ready.line "go" }
local t = hum.task "t" { cmd = "true" }
local ticks = 0
local h = hum.every(0.05, function() ticks = ticks + 1 end)
t:on("exit", function()
	local t0 = hum.clock()
	hum.sleep(0.2)
	rec("slept", hum.clock() - t0 >= 0.19)
	rec("wait", hum.wait(slow, "ready", 20))
	local res = hum.exec({ "sh", "-c", "cat; echo err >&2; exit 3" }, { input = "hello" })
	rec("exec", res.code, res.stdout, res.stderr:gsub("\n", ""))
	local to = hum.exec("sleep 10", { timeout = 0.2 })
	rec("timeout", to.error, to.signal)
	rec("ticks", ticks >= 5)
	h:cancel()
	local before = ticks
	hum.sleep(0.3)
	rec("cancelled", ticks == before)
	rec("wait-timeout", hum.wait(t, "ready", 0.1))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("slept true", r)
		assert.matches("wait true", r)
		assert.matches("exec 3 hello err", r)
		assert.matches("timeout timeout KILL", r)
		assert.matches("ticks true", r)
		assert.matches("cancelled true", r)
	end)

	it("raises a clear error for helpers called outside a reaction", function()
		for _, call in ipairs { "hum.sleep(1)", "hum.exec('true')", "hum.wait(hum.get('t'), 'ready')" } do
			local file = S.config('local hum = require "hum"\nhum.task "t" { cmd = "true" }\n' .. call .. "\n")
			local code, out = S.run({ "up", "-f", file })
			assert.are.equal(1, code, out)
			assert.matches("hum%.lua:3: hum%.%a+ can only be called inside a reaction", out)
		end
	end)

	it("disables a reaction after 5 consecutive failures", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "for i in 1 2 3 4 5 6 7 8; do echo tick $i; done" }
t:on("line", "tick (%d)", function(ev, n) rec("ran", n) error("fail " .. n) end)
]]
		assert.are.equal(0, code, out)
		local runs = 0
		for _ in r:gmatch("ran %d") do runs = runs + 1 end
		assert.are.equal(5, runs)
		assert.matches("disabled after 5 consecutive failures", out)
	end)

	it("interrupts a runaway reaction and keeps supervising (JIT on)", function()
		local code, out, r = run([[
assert(jit.status(), "the JIT must be on for this test")
local t = hum.task "t" { cmd = "echo first; sleep 0.5; echo second" }
t:on("line", "first", function()
	local x = 0
	while true do x = x + 1 end
end)
t:on("line", "second", function() rec("second", "seen") end)
]], {}, { env = { HUM_REACTION_LIMIT = "1" } })
		assert.are.equal(0, code, out)
		assert.matches("runaway reaction: ran for more than 1s without yielding", out)
		assert.matches("second seen", r)
	end)
end)

describe("environment", function()
	it("merges hum.env, env files and per-process env, with unset", function()
		local dir = S.tmpdir()
		S.write(dir .. "/.env", [[
# comment
export A=1
B="two words"
C='single $A'
D=${A}-x  # trailing comment
E="line\nbreak"
]])
		local file, _, results = scenario([[
hum.env_file ".env"
hum.env { G = "global", H = "gone" }
local t = hum.task "t" { cmd = "echo \"$A|$B|$C|$D|$G|${H-unset}|$P|$HUM_PROCESS\"", env = { P = 5, H = false } }
t:on("line", ".", function(ev) rec(ev.line) end)
]], dir)
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("1|two words|single %$A|1%-x|global|unset|5|t", S.read(results))
	end)

	it("runs replicas with HUM_REPLICA set", function()
		local code, out, r = run [[
local w = hum.task "w" { cmd = "echo replica=$HUM_REPLICA name=$HUM_PROCESS", scale = 3 }
w:on("line", "replica=(%d) name=(%S+)", function(ev, n, name) rec("r", n, name, ev.name) end)
]]
		assert.are.equal(0, code, out)
		for n = 1, 3 do assert.matches(("r %d w.%d w.%d"):format(n, n, n), r) end
	end)
end)
