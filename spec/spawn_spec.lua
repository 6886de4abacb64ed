-- Starting a child and reporting how it ended: exit codes and terminating
-- signals, spawn errors (missing binary, bad cwd, no x bit) told apart from
-- exit 126/127, and the fds a child is given.
local S = require "support.hum"
local H = require "support.socket"
local P = require "support.procfs"
local cjson = require "cjson"

local scenario = S.scenario
local marker = S.marker
local lines = S.file_lines
local fds = P.fds

describe("hum up", function()
	it("reports exit codes and terminating signals", function()
		local file, dir, results = scenario [[
local a = hum.task "a" { cmd = "exit 3" }
local b = hum.task "b" { cmd = "kill -KILL $$" }
local c = hum.task "c" { cmd = { "true" } }
for _, p in ipairs { a, b, c } do
	p:on("exit", function(ev) rec(ev.name, ev.state, ev.code, ev.signal) end)
end
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(1, code, out)
		local r = S.read(results)
		assert.matches("a failed 3 nil", r)
		assert.matches("b failed nil KILL", r)
		assert.matches("c succeeded 0 nil", r)
		assert.matches("a: exited with code 3", out)
		assert.matches("b: killed by SIGKILL", out)
	end)

	it("exits 0 when every task succeeded", function()
		local file = scenario [[hum.task "ok" { cmd = "echo fine" }]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("%d%d:%d%d:%d%d ok%s+│ fine", out)
	end)

	it("reports a missing binary and a bad cwd as spawn errors, not exit 127", function()
		local file, _, results = scenario [[
local m = hum.task "missing" { cmd = { "/nonexistent/binary" } }
local d = hum.task "badcwd" { cmd = { "true" }, cwd = "/nonexistent/dir" }
local e = hum.task "e127" { cmd = "exit 127" }
hum.on("exit", function(ev) end)
for _, p in ipairs { m, d, e } do
	p:on("state", function(ev)
		if ev.state == "failed" then
			local s = p:status()
			rec(ev.name, tostring(s.spawn_error), s.exit_code, s.reason)
		end
	end)
end
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(1, code, out)
		local r = S.read(results)
		assert.matches("missing true nil [^\n]*No such file or directory", r)
		assert.matches("badcwd true nil [^\n]*/nonexistent/dir[^\n]*No such file or directory", r)
		assert.matches("e127 false 127 exited with code 127", r)
	end)

	it("reports a command without an x bit as a spawn error, not exit 126/127, and never retries it", function()
		local dir = S.tmpdir()
		-- root too gets EACCES from execve for a file with no x bit at all
		os.execute("mkdir " .. S.q(dir .. "/bin"))
		for _, f in ipairs { dir .. "/noexec.sh", dir .. "/bin/noexec-on-path" } do
			S.write(f, "#!/bin/sh\necho should not run\n")
			assert.is_truthy(os.execute("chmod 644 " .. S.q(f)))
		end
		local file, _, results = scenario(([[
local a = hum.task "direct" { cmd = { "./noexec.sh" } }
local b = hum.task "onpath" { cmd = { "noexec-on-path" }, env = { PATH = %q } }
local c = hum.service "always" { cmd = { "./noexec.sh" }, restart = { policy = "always", backoff = { 0.1, 0.1 } } }
for _, p in ipairs { a, b, c } do
	p:on("exit", function(ev)
		local s = p:status()
		rec(ev.name, ev.state, s.state, tostring(s.spawn_error), tostring(s.exit_code), s.restarts, "|" .. s.reason)
	end)
end
]]):format(dir .. "/bin"), dir)
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(1, code, out)
		local r = S.read(results) or ""
		assert.matches("direct failed failed true nil 0 |exec %./noexec%.sh: Permission denied\n", r)
		assert.matches("onpath failed failed true nil 0 |exec noexec%-on%-path: Permission denied\n", r)
		assert.matches("always failed failed true nil 0 |exec %./noexec%.sh: Permission denied\n", r)
		assert.are.equal(3, #lines(results), r)
		assert.is_nil(out:find("should not run", 1, true), out)
		assert.is_nil(out:find("exited with code", 1, true), out)
		assert.matches("direct: exec %./noexec%.sh: Permission denied", out)
	end)

	it("gives a child only fds 0, 1 and 2, also one started while a client is connected", function()
		local mark = marker("FDS")
		local u = H.up(([[
local hum = require "hum"
hum.service "s" { cmd = "echo up; exec sleep 1000", env = { MARK = %q } }
hum.service "late" { cmd = "echo late; exec sleep 1000", env = { MARK = %q }, autostart = false }
]]):format(mark, mark))
		local c
		-- (busted keeps one finally per test: the last one given)
		finally(function()
			if c then c:close() end
			u:close()
		end)
		local function check(name)
			local p = u:wait_state(name, { ready = true })
			-- exec'd sleep: the pid and its fds stay put while we look, once
			-- the dynamic loader has closed the libraries it opened (an fd
			-- that stays is still seen: the wait ends without it)
			S.wait(function()
				return (S.read("/proc/" .. p.pid .. "/cmdline") or ""):find("^sleep%z")
			end, nil, name .. " to exec sleep")
			pcall(S.wait, function() return select(2, fds(p.pid)) <= 3 end, 5)
			local t, n = fds(p.pid)
			assert.are.equal(3, n, name .. ": " .. cjson.encode(t))
			assert.are.equal("/dev/null", t[0])
			assert.matches("^pipe:%[%d+%]$", t[1])
			assert.matches("^pipe:%[%d+%]$", t[2])
			assert.are_not.equal(t[1], t[2])
		end
		check("s")
		-- a connection of the API thread is open while `late` is spawned
		c = u:connect()
		assert.is_true(c:request({ cmd = "ping" }).ok)
		local code, out = u:hum({ "start", "late" })
		assert.are.equal(0, code, out)
		check("late")
		assert.is_true(c:request({ cmd = "ping" }).ok)
	end)
end)
