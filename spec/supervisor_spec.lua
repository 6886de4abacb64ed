-- The supervisor end to end: the real hum binary, real children.
local S = require "support"

local scenario = S.scenario

local function lines(path)
	local t = {}
	for l in (S.read(path) or ""):gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

local function wait_result(results, pattern, timeout)
	return S.wait(function()
		local r = S.read(results) or ""
		return r:find(pattern) and r
	end, timeout, "result " .. pattern)
end

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

	it("keeps stdout and stderr apart, flushes partial lines, splits a 1 MiB line", function()
		local file, _, results = scenario [[
local p = hum.task "p" {
	cmd = [=[printf 'to out\n'; printf 'to err\n' >&2; head -c 1048576 /dev/zero | tr '\0' x; printf '\n'; printf 'no newline']=],
}
local big, pieces, cont = 0, 0, 0
p:on("line", ".", function(ev)
	if ev.line:match("^x+$") then
		big, pieces = big + #ev.line, pieces + 1
		if ev.continued then cont = cont + 1 end
	else
		rec(ev.line, ev.stream)
	end
end)
p:on("exit", function() rec("big", big, pieces, cont) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local r = S.read(results)
		assert.matches("to out out", r)
		assert.matches("to err err", r)
		assert.matches("no newline out", r)
		assert.matches("big 1048576 16 15", r)
		assert.matches("p%s+! to err", out)
	end)

	it("delivers every line of a fast writer, in order (200 MB)", function()
		-- the log ring keeps the newest lines (older ones are dropped and
		-- counted); the counters prove none was lost on the way in, and the
		-- tail proves order and content (core/tests/proc_test.c checks every
		-- line of a 2M-line flood one by one)
		local file, dir, results = scenario [[
local f = hum.task "flood" { cmd = "seq 1 25000000" }
f:on("exit", function()
	local st = f:status()
	local tail = f:logs { n = 1000 }
	local ok = #tail == 1000
	for k, l in ipairs(tail) do
		if l.line ~= tostring(25000000 - 1000 + k) then ok = false end
		if k > 1 and l.seq ~= tail[k - 1].seq + 1 then ok = false end
	end
	rec("counts", st.lines, st.bytes, st.dropped + (st.last_seq - st.first_seq + 1), "tail", ok)
end)
]]
		local code = os.execute(("cd %s && timeout 300 %s up -f %s >/dev/null 2>&1"):format(S.q(dir), S.q(S.HUM), S.q(file)))
		assert.is_truthy(code == 0 or code == true)
		-- seq 1 25000000 writes 188,888,897 bytes besides its newlines
		assert.matches("counts 25000000 188888897 25000000 tail true", S.read(results))
	end)

	it("stops a process that is asked to stop as stopped, even when it exits non-zero", function()
		local file, _, results = scenario [[
local s = hum.service "s" { cmd = "trap 'exit 7' TERM; echo up; while :; do sleep 0.1; done", ready = hum.ready.line "up" }
s:on("ready", function()
	s:stop()
	hum.wait(s, "stopped", 20)
	local st = s:status()
	rec("state", st.state, st.exit_code)
	hum.shutdown(0)
end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("state stopped 7", S.read(results))
	end)

	it("kills a TERM-ignoring child after the grace period", function()
		local file, _, results = scenario [[
local s = hum.service "s" { cmd = "trap '' TERM; echo up; while :; do sleep 0.1; done", stop = { grace = 0.5 }, ready = hum.ready.line "up" }
s:on("ready", function()
	local t0 = hum.clock()
	s:stop()
	hum.wait(s, "stopped", 20)
	local st = s:status()
	rec("stopped", st.signal, hum.clock() - t0 >= 0.45)
	hum.shutdown(0)
end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("stopped KILL true", S.read(results))
	end)

	it("leaves no grandchild behind after stop, including a setsid'd daemon", function()
		local marker = "HUMSPEC_" .. tostring(os.time()) .. math.random(1e6)
		local file, _, results = scenario(([[
local s = hum.service "tree" {
	cmd = "sleep 1000 & setsid sh -c 'sleep 1000 & sleep 1000' & (sh -c 'sleep 1000 &') ; echo spawned; wait",
	env = { MARKER = %q },
}
s:on("line", "spawned", function()
	hum.sleep(0.2)
	rec("before", #hum.exec("grep -l -a -s %s /proc/[0-9]*/environ | wc -l").stdout)
	s:stop()
	hum.wait(s, "stopped", 20)
	hum.shutdown(0)
end)
]]):format(marker, marker))
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		S.wait(function() return #S.pids_with_env(marker) == 0 end, 10, "all descendants gone")
		assert.are.same({}, S.pids_with_env(marker))
	end)

	it("kills what a finished run left behind when a reaction starts it again, while idle", function()
		-- the start comes from a reaction, inside the loop's prepare phase,
		-- where a queued sweep once waited for the loop's next wake-up
		local marker = "HUMSPEC_LEFT_" .. tostring(os.time()) .. math.random(1e6)
		local dir = S.tmpdir()
		local file = scenario(([[
local again = false
local d = hum.service "d" {
	cmd = "if [ -e %s/again ]; then touch %s/second; exec sleep 1000 >/dev/null; fi; "
		.. "touch %s/again; setsid sleep 301 >/dev/null 2>&1 & echo first; exit 0",
	env = { MARKER = %q },
	restart = { policy = "no" },
}
d:on("exit", function()
	if not again then again = true; hum.sleep(0.3); d:start() end
end)
]]):format(dir, dir, dir, marker), dir)
		local h = S.start({ "up", "-f", file })
		finally(function() h:close() end)
		S.wait(function() return S.read(dir .. "/second") end, 30, "the second run")
		local function leftovers()
			local n = 0
			for _, pid in ipairs(S.pids_with_env(marker)) do
				if (S.read("/proc/" .. pid .. "/cmdline") or ""):find("301", 1, true) then n = n + 1 end
			end
			return n
		end
		S.wait(function() return leftovers() == 0 end, 10, "the first run's setsid'd sleep killed")
		-- the second run is untouched
		assert.is_nil(h:code())
		assert.are.equal(1, #S.pids_with_env(marker))
	end)

	it("restarts on failure with backoff, counting restarts, and stops at max", function()
		local file, _, results = scenario [[
local f = hum.service "f" { cmd = "exit 1", restart = { policy = "on-failure", max = 3, backoff = { 0.2, 0.8 } } }
f:on("start", function(ev) rec("start", ev.restarts, hum.clock()) end)
f:on("exit", function(ev) rec("exit", ev.state, ev.restarts) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(1, code, out)
		local starts, exits = {}, {}
		for _, l in ipairs(lines(results)) do
			local n, t = l:match("^start (%d+) (%S+)")
			if n then starts[#starts + 1] = { tonumber(n), tonumber(t) } end
			local st = l:match("^exit (%S+)")
			if st then exits[#exits + 1] = st end
		end
		assert.are.equal(4, #starts)
		for k = 1, 4 do assert.are.equal(k - 1, starts[k][1]) end
		-- backoff doubles: >= 0.2, 0.4, 0.8 between starts
		assert.is_true(starts[2][2] - starts[1][2] >= 0.18)
		assert.is_true(starts[3][2] - starts[2][2] >= 0.38)
		assert.is_true(starts[4][2] - starts[3][2] >= 0.75)
		assert.are.same({ "backoff", "backoff", "backoff", "failed" }, exits)
	end)

	it("cancels a pending restart when stopped during backoff", function()
		local file, _, results = scenario [[
local f = hum.service "f" { cmd = "exit 1", restart = { policy = "always", backoff = { 5, 5 } } }
f:on("exit", function(ev)
	if ev.state == "backoff" then
		f:stop()
		rec("after-stop", f:status().state)
		hum.sleep(6)
		local st = f:status()
		rec("later", st.state, st.restarts, st.pid)
		hum.shutdown(0)
	end
end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local r = S.read(results)
		assert.matches("after%-stop stopped", r)
		assert.matches("later stopped 0 0", r)
	end)

	it("keeps supervising after an error in a reaction, with a traceback naming file:line", function()
		local file, _, results = scenario [[
local t = hum.task "t" { cmd = "echo one; echo two" }
t:on("line", "one", function() error("boom in reaction") end)
t:on("line", "two", function() rec("still", "running") end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		assert.matches("hum%.lua:%d+: boom in reaction", out)
		assert.matches("stack traceback", out)
		assert.matches("still running", S.read(results))
	end)

	it("stops everything and leaves no process behind on SIGTERM", function()
		local marker = "HUMSPEC_TERM_" .. tostring(os.time()) .. math.random(1e6)
		local file = scenario(([[
hum.service "a" { cmd = "echo a-up; sleep 1000", env = { MARKER = %q } }
hum.service "b" { cmd = "trap '' TERM; echo b-up; sleep 1000 & wait", env = { MARKER = %q }, stop = { grace = 0.5 } }
]]):format(marker, marker))
		local h = S.start({ "up", "-f", file })
		h:wait_output("a%-up")
		h:wait_output("b%-up")
		assert.is_true(#S.pids_with_env(marker) >= 2)
		h:signal("TERM")
		assert.are.equal(143, h:wait_exit())
		S.wait(function() return #S.pids_with_env(marker) == 0 end, 10, "children gone")
	end)

	it("exits 130 on SIGINT while running", function()
		local file = scenario [[hum.service "a" { cmd = "echo up; sleep 1000" }]]
		local h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
	end)

	it("kills every group at once on a second SIGINT, and exits 129 on SIGHUP", function()
		local file = scenario [[
hum.service "stubborn" { cmd = "trap '' TERM INT; echo up; while :; do sleep 0.1; done", stop = { grace = 60 } }
]]
		local h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("INT")
		h:wait_output("received SIGINT, stopping")
		h:signal("INT")
		assert.are.equal(130, h:wait_exit(20))
		assert.matches("second interrupt: killing every process group", h:output())

		file = scenario [[hum.service "a" { cmd = "echo up; sleep 1000" }]]
		h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("HUP")
		assert.are.equal(129, h:wait_exit())
	end)

	it("leaves no process behind within 2 s of kill -9", function()
		local marker = "HUMSPEC_KILL9_" .. tostring(os.time()) .. math.random(1e6)
		local file = scenario(([[
hum.service "a" { cmd = "echo a-up; sleep 1000", env = { MARKER = %q } }
hum.service "b" { cmd = "setsid sh -c 'sleep 1000' & echo b-up; wait", env = { MARKER = %q } }
hum.service "c" { cmd = "trap '' TERM HUP INT; echo c-up; sleep 1000 & wait", env = { MARKER = %q } }
]]):format(marker, marker, marker))
		local h = S.start({ "up", "-f", file })
		h:wait_output("a%-up")
		h:wait_output("b%-up")
		h:wait_output("c%-up")
		S.wait(function() return #S.pids_with_env(marker) >= 5 end, 10, "descendants running")
		h:signal("KILL")
		local t0 = S.now()
		S.wait(function() return #S.pids_with_env(marker) == 0 end, 10, "descendants gone")
		assert.is_true(S.now() - t0 <= 2.5, "took " .. (S.now() - t0) .. " s")
	end)
end)
