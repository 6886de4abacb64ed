-- More of the supervisor end to end (the real hum binary, real children):
-- spawn errors from a file without an x bit, config errors that must start
-- nothing, restart.reset, env_clear, reaping adopted orphans, the fds a
-- child gets, `hum up GROUP`, and the demo of `make run`.
local S = require "support"
local H = require "srv_helpers"
local cjson = require "cjson"

local scenario = S.scenario

local function marker(what)
	return ("HUMSPEC_%s_%d_%d"):format(what, os.time(), math.random(1e6))
end

local function lines(path)
	local t = {}
	for l in (S.read(path) or ""):gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

local function exists(path)
	local f = io.open(path)
	if f then f:close() end
	return f ~= nil
end

-- `hum ps --json` run in dir: name -> process object, or nil when no hum answers
local function ps(dir, file)
	local args = { "ps", "--json" }
	if file then args[#args + 1] = "-f" args[#args + 1] = file end
	local code, out = S.run(args, { cwd = dir })
	if code ~= 0 then return nil end
	local by = {}
	for _, p in ipairs(cjson.decode(out)) do by[p.name] = p end
	return by
end

-- /proc/<pid>/stat: state letter and parent pid (nil once reaped)
local function stat(pid)
	local st = S.read("/proc/" .. pid .. "/stat")
	if not st then return nil end
	local state, ppid = st:match("^%d+ %b() (%a) (%d+)")
	return state, tonumber(ppid)
end

-- pids of zombies whose parent is ppid
local function zombies_of(ppid)
	local out = {}
	local p = io.popen("ls /proc")
	for name in p:lines() do
		local pid = tonumber(name)
		if pid then
			local state, parent = stat(pid)
			if state == "Z" and parent == ppid then out[#out + 1] = pid end
		end
	end
	p:close()
	return out
end

-- the open fds of a process, read from outside: fd -> link target, count
local function fds(pid)
	local t, n = {}, 0
	local p = io.popen("cd /proc/" .. pid .. "/fd 2>/dev/null && for f in *; do printf '%s %s\\n' \"$f\" \"$(readlink \"$f\")\"; done")
	for l in p:lines() do
		local fd, target = l:match("^(%d+) (.*)$")
		if fd then
			t[tonumber(fd)] = target
			n = n + 1
		end
	end
	p:close()
	return t, n
end

describe("hum up (more)", function()
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

	describe("with an error in the config", function()
		local cases = {
			{ "a Lua syntax error", [[
hum.service "first" { cmd = "touch $RAN; exec sleep 1000", env = { MARK = "$MARK" } }
hum.service "second" { cmd = "true"
hum.service "third" { cmd = "true" }
]], "hum%.lua:5: '}' expected %(to close '{' at line 4%)" },
			{ "an unknown dependency", [[
hum.service "first" { cmd = "touch $RAN; exec sleep 1000", env = { MARK = "$MARK" } }
hum.service "second" { cmd = "true", after = { "ghost" } }
]], 'hum%.lua:4: "second" depends on unknown process "ghost"' },
			{ "an unknown field", [[
hum.service "first" { cmd = "touch $RAN; exec sleep 1000", env = { MARK = "$MARK" } }
hum.service "second" { cmd = "true", colour = "red" }
]], 'hum%.lua:4: hum%.service "second": unknown field "colour"' },
		}
		for _, case in ipairs(cases) do
			it("exits 1, prints file:line and starts nothing: " .. case[1], function()
				local dir = S.tmpdir()
				local mark = marker("BADCFG")
				local ran = dir .. "/first-ran"
				local file = S.config("local hum = require \"hum\"\n\n"
					.. case[2]:gsub("%$RAN", ran):gsub("%$MARK", mark), dir)
				local code, out = S.run({ "up", "-f", file }, { cwd = dir })
				assert.are.equal(1, code, out)
				assert.matches(case[3], out)
				-- hum has exited: anything it had started would have touched
				-- the file (first in the file, no dependencies) or be alive
				assert.is_false(exists(ran), "the first service ran")
				assert.are.same({}, S.pids_with_env(mark))
				assert.is_nil(out:find("first", 1, true), out)
				assert.is_false(exists(dir .. "/.hum/hum.sock"))
			end)
		end
	end)

	it("resets the backoff delay and the restart budget after a run that stayed up restart.reset seconds", function()
		-- runs 1-3 fail at once (delays 0.3, 0.6, 1.2: attempts 1-3, the
		-- budget of max = 3 is spent); run 4 stays up 1.5 s > reset = 1, so
		-- its failure restarts at attempt 1 with the initial 0.3 s delay
		-- (without the reset: gave up; with a reset budget but not delay:
		-- 2.4 s); run 5 exits 0
		local file, _, results = scenario [[
local f = hum.service "f" {
	cmd = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n >count; "
		.. "if [ $n -eq 4 ]; then sleep 1.5; fi; if [ $n -ge 5 ]; then exit 0; fi; exit 1",
	restart = { policy = "on-failure", max = 3, backoff = { 0.3, 10 }, reset = 1 },
}
f:on("start", function(ev) rec("start", ev.restarts, hum.clock()) end)
f:on("exit", function(ev) rec("exit", ev.state, ev.restarts, hum.clock(), ev.reason) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local starts, exits = {}, {}
		for _, l in ipairs(lines(results)) do
			local n, t = l:match("^start (%d+) (%S+)$")
			if n then starts[#starts + 1] = { n = tonumber(n), t = tonumber(t) } end
			local st, en, et, reason = l:match("^exit (%S+) (%d+) (%S+) ?(.*)$")
			if st then exits[#exits + 1] = { state = st, n = tonumber(en), t = tonumber(et), reason = reason } end
		end
		assert.are.equal(5, #starts, S.read(results))
		assert.are.equal(5, #exits, S.read(results))
		for k = 1, 5 do assert.are.equal(k - 1, starts[k].n) end
		assert.are.equal("restarting in 0.3s (attempt 1)", exits[1].reason)
		assert.are.equal("restarting in 0.6s (attempt 2)", exits[2].reason)
		assert.are.equal("restarting in 1.2s (attempt 3)", exits[3].reason)
		assert.are.equal("restarting in 0.3s (attempt 1)", exits[4].reason)
		assert.are.same({ "backoff", "backoff", "backoff", "backoff", "succeeded" },
			{ exits[1].state, exits[2].state, exits[3].state, exits[4].state, exits[5].state })
		-- the delays: doubling, then back to the initial one (the doubled one
		-- would be 2.4 s: the bound leaves 1.7 s for a loaded machine)
		assert.is_true(starts[2].t - exits[1].t >= 0.27)
		assert.is_true(starts[3].t - exits[2].t >= 0.57)
		assert.is_true(starts[4].t - exits[3].t >= 1.17)
		assert.is_true(exits[4].t - starts[4].t >= 1.4, "run 4 stayed up")
		local gap = starts[5].t - exits[4].t
		assert.is_true(gap >= 0.27 and gap < 2.0, "delay after the reset: " .. gap)
	end)

	it("env_clear gives the child only hum's variables, hum.env and its own env", function()
		local mark = marker("ENVCLEAR")
		local file, _, results = scenario [[
hum.env { FROM_HUM_ENV = "shared" }
local c = hum.task "clear" { cmd = { "env" }, env_clear = true, env = { FROM_PROC = "mine", NUM = 7 } }
local k = hum.task "kept" { cmd = { "env" }, env = { FROM_PROC = "kept" } }
for _, p in ipairs { c, k } do
	p:on("line", ".", function(ev) rec(ev.name, ev.line) end)
end
]]
		local code, out = S.run({ "up", "-f", file }, { env = { INHERIT_ME = mark, HOME = "/root/humspec" } })
		assert.are.equal(0, code, out)
		local clear, kept = {}, {}
		for _, l in ipairs(lines(results)) do
			local who, k, v = l:match("^(%a+) ([^=]+)=(.*)$")
			if who == "clear" then clear[k] = v elseif who == "kept" then kept[k] = v end
		end
		local keys = {}
		for k in pairs(clear) do keys[#keys + 1] = k end
		table.sort(keys)
		assert.are.same({ "FROM_HUM_ENV", "FROM_PROC", "HUM_PROCESS", "HUM_TOKEN", "NUM" }, keys)
		assert.are.equal("shared", clear.FROM_HUM_ENV)
		assert.are.equal("mine", clear.FROM_PROC)
		assert.are.equal("7", clear.NUM)
		assert.are.equal("clear", clear.HUM_PROCESS)
		assert.is_truthy(clear.HUM_TOKEN ~= "")
		-- without env_clear the same hum's environment is inherited
		assert.are.equal(mark, kept.INHERIT_ME)
		assert.are.equal("/root/humspec", kept.HOME)
		assert.are.equal("shared", kept.FROM_HUM_ENV)
		assert.are.equal("kept", kept.FROM_PROC)
		assert.are.equal("kept", kept.HUM_PROCESS)
	end)

	it("reaps an orphaned grandchild that exits after its parent: no zombie is left", function()
		-- service -> mid (exits at once, not waiting) -> grandchild: the
		-- grandchild is re-parented to hum (the subreaper) and exits when
		-- told to; hum must reap it
		local mark = marker("ORPHAN")
		local dir = S.tmpdir()
		S.write(dir .. "/mid.sh", [[
sh -c 'echo $$ >gc.tmp; mv gc.tmp gc.pid; while [ ! -e go ]; do sleep 0.05; done; exit 3' &
exit 0
]])
		local file = scenario(([[
hum.service "svc" { cmd = "sh ./mid.sh; echo spawned; exec sleep 1000", env = { MARK = %q } }
]]):format(mark), dir)
		local h = S.start({ "up", "-f", file }, { cwd = dir })
		finally(function() h:close() end)
		assert.are.equal("hum\n", S.read("/proc/" .. h.pid .. "/comm"))
		h:wait_output("spawned")
		local gc = tonumber(S.wait(function() return S.read(dir .. "/gc.pid") end, nil, "the grandchild's pid"))
		-- adopted by hum once mid has exited
		S.wait(function()
			local _, ppid = stat(gc)
			return ppid == h.pid
		end, nil, "the grandchild re-parented to hum")
		S.write(dir .. "/go", "")
		S.wait(function() return stat(gc) == nil end, 20, "the grandchild reaped (it stays a zombie otherwise)")
		assert.are.same({}, zombies_of(h.pid))
		-- hum and its service go on
		assert.is_nil(h:code())
		assert.are.equal(1, #S.pids_with_env(mark))
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 10, "the service gone")
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
			-- exec'd sleep: the pid and its fds stay put while we look
			S.wait(function()
				return (S.read("/proc/" .. p.pid .. "/cmdline") or ""):find("^sleep%z")
			end, nil, name .. " to exec sleep")
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

	it("starts only a group's members and their dependencies with hum up GROUP", function()
		local mark = marker("GROUP")
		local file, dir = scenario(([[
hum.env { MARK = %q }
local dep = hum.service "dep" { cmd = "echo dep-up; exec sleep 1000", ready = hum.ready.line "dep%%-up" }
local a = hum.service "a" { cmd = "echo a-up; exec sleep 1000", after = { "dep" }, ready = hum.ready.line "a%%-up" }
hum.service "other" { cmd = "touch other-ran; echo other-up; exec sleep 1000" }
hum.service "b" { cmd = "touch b-ran; exec sleep 1000", group = "g2" }
hum.task "t" { cmd = "touch t-ran", groups = { "g2" } }
hum.group "g" { a }
]]):format(mark))
		local h = S.start({ "up", "-f", file, "g" }, { cwd = dir })
		finally(function() h:close() end)
		local procs = S.wait(function()
			local by = ps(dir)
			-- every process is listed as soon as the socket answers
			-- (the world is published before it listens)
			assert(not by or (by.a and by.other), "hum ps answered without every process")
			return by and by.a.state == "ready" and by
		end, nil, "a ready")
		assert.are.equal("ready", procs.dep.state)
		-- `other` has no dependency: had it been wanted, it would have been
		-- started in the same pass as dep, long before a was ready
		for _, name in ipairs { "other", "b", "t" } do
			assert.are.equal("pending", procs[name].state, name)
			assert.are.equal(cjson.null, procs[name].pid, name)
			assert.are.equal(cjson.null, procs[name].started_at, name)
		end
		for _, f in ipairs { "other-ran", "b-ran", "t-ran" } do assert.is_false(exists(dir .. "/" .. f), f) end
		assert.are.equal(2, #S.pids_with_env(mark))
		local out = h:output()
		assert.matches("dep%s+│ dep%-up", out)
		assert.matches("a%s+│ a%-up", out)
		assert.is_nil(out:find("other-up", 1, true), out)
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 10, "dep and a gone")
	end)

	it("runs the demo of make run (scripts/demo.lua) and stops it with Ctrl-C", function()
		-- the demo listens on no port; a copy in a fresh directory keeps its
		-- control socket out of the source tree
		local mark = marker("DEMO")
		local dir = S.tmpdir()
		local file = S.write(dir .. "/demo.lua", assert(S.read(S.ROOT .. "/scripts/demo.lua")))
		local h = S.start({ "up", "-f", file }, { cwd = dir, env = { DEMO_MARK = mark } })
		finally(function() h:close() end)
		h:wait_output("everything is up; press Ctrl-C to stop", nil, true)
		h:wait_output("api is up at http://127.0.0.1:8080", nil, true)
		local procs = S.wait(function()
			local by = ps(dir, file)
			return by and by.api.state == "ready" and by
		end, nil, "hum ps --json")
		assert.are.equal("ready", procs.db.state)
		assert.are.equal("succeeded", procs.migrate.state)
		assert.is_truthy(({ ready = true, running = true, backoff = true, failed = true })[procs.worker.state],
			procs.worker.state)
		local out = h:output()
		assert.matches("db%s+│ db: ready to accept connections", out)
		assert.matches("migrate%s+│ applying 001_users.*migrate%s+│ migrations done", out)
		-- every process of the demo carries the marker (inherited from hum)
		assert.is_true(#S.pids_with_env(mark) >= 3)
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
		assert.matches("received SIGINT, stopping", h:output())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 10, "the demo's processes gone")
	end)
end)
