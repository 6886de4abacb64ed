-- Readiness and liveness probes: line, tcp, http and exec; their captures,
-- timeouts and retries, and what dependents see when a probe gives up.
local S = require "support.hum"
local run = require "support.scenario".run

local count = S.count

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
