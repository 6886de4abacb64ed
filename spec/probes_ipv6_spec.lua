-- Readiness probes on `localhost` reach a server on either loopback (Node 17+
-- and Vite listen on ::1 only), names resolve without blocking the loop, and
-- hum.exec leaves nothing running behind it.
local S = require "support.hum"

local function run(body)
	local file, dir, results = S.scenario(body)
	local code, out = S.run({ "up", "-f", file }, { timeout = 60 })
	return code, out, S.read(results) or "", dir
end

local function can_listen(addr, port)
	return os.execute(S.q(S.FIX .. "/http_on") .. " " .. addr .. " " .. port .. " check") == 0
end

local have6 = can_listen("::1", 0)

-- Three ports in a row, free on both loopbacks.
local function free_ports()
	for _ = 1, 50 do
		local p = 20000 + math.random(20000)
		local free = true
		for i = 0, 2 do
			free = free and can_listen("::1", p + i) and can_listen("127.0.0.1", p + i)
		end
		if free then return p end
	end
	error("no free ports")
end

describe("probes on localhost", function()
	it("tcp and http probes on localhost pass against servers on ::1 only, and on 127.0.0.1 only", function()
		if not have6 then return pending("no IPv6 loopback here") end
		local port = free_ports()
		local code, out, r = run(([[
local srv = "%s"
local web = hum.service "web" { cmd = { srv, "::1", "%d" }, ready = hum.ready.http("http://localhost:%d/") }
local tcp = hum.service "tcp" { cmd = { srv, "::1", "%d" }, ready = hum.ready.tcp(%d) }
local v4 = hum.service "v4" { cmd = { srv, "127.0.0.1", "%d" }, ready = hum.ready.tcp(%d, "localhost") }
local n = 0
for _, p in ipairs { web, tcp, v4 } do
	p:on("ready", function(ev)
		rec("ready", ev.name)
		n = n + 1
		if n == 3 then hum.shutdown(0) end
	end)
end
hum.after(30, function()
	for _, p in ipairs { web, tcp, v4 } do local st = p:status() rec("late", st.name, st.state, st.reason) end
	hum.shutdown(1)
end)
]]):format(S.FIX .. "/http_on", port, port, port + 1, port + 1, port + 2, port + 2))
		assert.are.equal(0, code, out .. r)
		assert.matches("ready web", r)
		assert.matches("ready tcp", r)
		assert.matches("ready v4", r)
	end)

	it("names resolve off the loop: a name that does not resolve fails the probe, timers keep firing", function()
		local code, out, r = run [[
local a = hum.service "a" { cmd = "sleep 100",
	ready = hum.ready.tcp(80, "hum-no-such-host.invalid", { interval = 0.1, timeout = 1.5 }) }
local last, gap = hum.clock(), 0
local h = hum.every(0.02, function()
	local t = hum.clock()
	gap = math.max(gap, t - last)
	last = t
end)
hum.after(2.5, function()
	h:cancel()
	local st = a:status()
	rec("state", st.state, st.reason)
	rec("gap", gap < 1 and "small" or ("%.2f"):format(gap))
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		-- "resolve <name>: <gai error>" or, with a resolver that does not
		-- answer, "timeout resolving <name>": either way the name is named.
		assert.matches("state running not ready: tcp probe gave up after 1.5s %(.*hum%-no%-such%-host%.invalid.*%)", r)
		assert.matches("gap small", r)
	end)
end)

describe("hum.exec leftovers", function()
	it("kills what a command left running when it ends", function()
		local code, out, r = run [[
local function gone(pid)
	local f = io.open("/proc/" .. pid .. "/stat")
	if not f then return true end
	local st = f:read("*a")
	f:close()
	return st:match("^%d+ %b() Z") ~= nil
end
local t = hum.task "t" { cmd = "true" }
t:on("exit", function()
	local res = hum.exec("sleep 300 </dev/null >/dev/null 2>&1 & echo $!; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!")
	rec("exec", res.code)
	local pids = {}
	for pid in res.stdout:gmatch("%d+") do pids[#pids + 1] = pid end
	local t0 = hum.clock()
	while hum.clock() - t0 < 10 and not (gone(pids[1]) and gone(pids[2])) do hum.sleep(0.05) end
	rec("left", #pids, gone(pids[1]) and "group-child-gone" or "group-child-alive",
		gone(pids[2]) and "setsid-child-gone" or "setsid-child-alive")
	hum.shutdown(0)
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("exec 0", r)
		assert.matches("left 2 group%-child%-gone setsid%-child%-gone", r)
	end)
end)
