-- Stopping a process: a stop is a stop whatever the exit code, the grace
-- period and the kill after it, and no descendant left behind — grandchildren,
-- setsid'd daemons, what a finished run left running, orphans adopted by hum
-- (reaped, never left as zombies).
local S = require "support.hum"
local P = require "support.procfs"

local scenario = S.scenario
local marker = S.marker
local stat = P.stat
local zombies_of = P.zombies_of

describe("hum up", function()
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
		-- the tree: a plain child; a daemon, two sleeps in a session of
		-- their own (setsid) with no pipe of hum's open, so that nothing but
		-- a look at the processes shows it left behind; one sleep orphaned at
		-- once and adopted by hum.  They must be gone once the stop has
		-- completed, while hum still runs: at hum's exit its kill -9 guard
		-- would clean up what the stop left behind
		local marker = "HUMSPEC_" .. tostring(os.time()) .. math.random(1e6)
		local file, dir = scenario(([[
hum.service "tree" {
	cmd = "sleep 1000 & setsid sh -c 'sleep 1000 & sleep 1000' </dev/null >/dev/null 2>&1 & (sh -c 'sleep 1000 &') ; echo spawned; wait",
	env = { MARKER = %q },
}
]]):format(marker))
		local h = S.start({ "up", "-f", file }, { cwd = dir })
		finally(function() h:close() end)
		h:wait_output("spawned")
		-- every process of the tree carries the marker: record them all once
		-- the four sleeps are there and the orphan has been adopted
		local tree = S.wait(function()
			local t = { pids = S.pids_with_env(marker), sleeps = 0, sessions = 0, adopted = 0 }
			local seen = {}
			for _, pid in ipairs(t.pids) do
				local argv = P.cmdline(pid) or {}
				local _, ppid, sid = P.stat(pid)
				if argv[1] == "sleep" and argv[2] == "1000" and sid then
					t.sleeps = t.sleeps + 1
					if not seen[sid] then seen[sid], t.sessions = true, t.sessions + 1 end
					if ppid == h.pid then t.adopted = t.adopted + 1 end
				end
			end
			return t.sleeps == 4 and t.adopted == 1 and t
		end, nil, "the tree of four sleeps, one adopted by hum")
		assert.are.equal(4, tree.sleeps)
		assert.are.equal(2, tree.sessions, "the setsid'd sleeps are in a session of their own")
		assert.are.equal(1, tree.adopted)
		assert.is_true(#tree.pids >= 5, "the service's shell and its sleeps: " .. #tree.pids)
		local code, out = S.run({ "stop", "tree" }, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.matches("tree%s+stopped", out)
		-- a recorded pid is gone once it no longer exists or no longer
		-- carries the marker (the pid was used again)
		local function left()
			local t = {}
			for _, pid in ipairs(tree.pids) do
				if S.alive(pid) and (S.read("/proc/" .. pid .. "/environ") or ""):find(marker, 1, true) then
					t[#t + 1] = pid
				end
			end
			return t
		end
		S.wait(function() return #left() == 0 end, 30, "every recorded process gone after the stop")
		assert.are.same({}, S.pids_with_env(marker))
		assert.is_nil(h:code(), "hum still runs: the stop, not hum's exit, cleaned up")
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
end)
