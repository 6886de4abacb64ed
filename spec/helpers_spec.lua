-- The helpers a reaction calls and that suspend it without blocking the
-- loop: hum.sleep, hum.exec (cwd, env, input, timeout), hum.wait (on
-- conditions, exits, replicas), and the error when they are called outside a
-- reaction.
local S = require "support.hum"
local run = require "support.scenario".run

describe("helpers", function()
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
		-- t has exited: it is not ready, the wait ends at its timeout
		assert.matches("wait%-timeout nil timeout\n", r)
	end)

	it("raises a clear error for helpers called outside a reaction", function()
		for _, call in ipairs { "hum.sleep(1)", "hum.exec('true')", "hum.wait(hum.get('t'), 'ready')" } do
			local file = S.config('local hum = require "hum"\nhum.task "t" { cmd = "true" }\n' .. call .. "\n")
			local code, out = S.run({ "up", "-f", file })
			assert.are.equal(1, code, out)
			assert.matches("hum%.lua:3: hum%.%a+ can only be called inside a reaction", out)
		end
	end)

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
