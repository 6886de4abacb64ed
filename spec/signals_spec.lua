-- Signals to `hum up`, as Unix programs treat them (README "Signals"): one
-- ignored at start stays ignored (nohup), SIGINT/SIGTERM/SIGHUP stop in
-- order, SIGQUIT stops everything at once with the grace, SIGUSR1 reopens
-- log files, SIGUSR2 prints the processes, SIGTSTP suspends the whole
-- environment; a process stopped by a signal shows as paused.
local H = require "support.socket"
local S = H.S

-- One service that sleeps: enough for most signal specs.
local API = [[
local hum = require "hum"
hum.service "api" { cmd = { "sleep", "1000" } }
]]

-- hum down, then hum up's exit status must be `code` (default 0).
local function down(u, code)
	u:hum({ "down" })
	assert.are.equal(code or 0, u.bg:wait_exit(30), u.bg:output())
end

local function marker(what) return ("HUMSIG_%s_%d_%d"):format(what, os.time(), math.random(1e6)) end

-- The state letter of a process (/proc/<pid>/stat: R, S, T, Z...), or nil.
local function pstate(pid)
	local st = S.read("/proc/" .. pid .. "/stat")
	return st and st:match("^%d+ %b() (%a)")
end

-- Starts `hum up` in dir through `sh -c 'PREFIX; exec hum up ...'`.
local function up_with(prefix, text)
	local dir = S.tmpdir()
	local wrapper = S.write(dir .. "/with.sh", "#!/bin/sh\n" .. prefix .. "\nexec " .. S.q(S.HUM) .. ' "$@"\n')
	os.execute("chmod +x " .. S.q(wrapper))
	local real = S.HUM
	S.HUM = wrapper
	local ok, u = pcall(H.up, text, { dir = dir })
	S.HUM = real
	assert(ok, u)
	return u
end

describe("signals", function()
	it("one ignored when hum starts stays ignored (nohup): SIGHUP and SIGTERM do not end hum", function()
		local u = up_with("trap '' HUP TERM", API)
		u:wait_state("api", "ready")
		u.bg:signal("HUP")
		u.bg:signal("TERM")
		-- signals arrive in order: once USR2 is answered, HUP and TERM were seen
		u.bg:signal("USR2")
		u.bg:wait_output("processes %(SIGUSR2%)")
		assert.is_nil(u.bg:code())
		assert.are.equal("ready", u:proc("api").state)
		assert.not_matches("received SIGHUP", u.bg:output())
		down(u)
	end)

	it("SIGINT stops hum even when a shell started it in the background with SIGINT ignored", function()
		-- (every spec starts hum through `sh -c '... &'`, which ignores
		-- SIGINT and SIGQUIT for it; they are still how hum is stopped)
		local u = up_with("trap '' INT QUIT", API)
		u:wait_state("api", "ready")
		u.bg:signal("INT")
		assert.are.equal(130, u.bg:wait_exit(30))
	end)

	it("SIGQUIT stops every process at once, each with its grace, and exits 131", function()
		local dir = S.tmpdir()
		local function rec(name, drain)
			return ([[trap 'echo "$(date +%%s%%N) %s got-signal" >>%s; sleep %s; echo "$(date +%%s%%N) %s drained" >>%s; exit 0' TERM; echo %s-up; while :; do sleep 0.1; done]])
				:format(name, S.q(dir .. "/events"), drain, name, S.q(dir .. "/events"), name)
		end
		local mark = marker("QUIT")
		local u = H.up(([[
local hum = require "hum"
hum.env { MARK = %q }
hum.service "db" { cmd = %q, ready = hum.ready.line "db%%-up" }
hum.service "web" { cmd = %q, after = { "db" }, stop = { grace = 5 } }
]]):format(mark, rec("db", 0), rec("web", 1)), { dir = dir })
		u:wait_state("web", "ready")
		u.bg:signal("QUIT")
		assert.are.equal(131, u.bg:wait_exit(30))
		local ev = S.read(dir .. "/events") or ""
		local db = tonumber(ev:match("(%d+) db got%-signal"))
		local drained = tonumber(ev:match("(%d+) web drained"))
		assert.is_truthy(drained, "web was killed before it drained (its grace is 5 s): " .. ev)
		assert.is_truthy(db, "db never got its stop signal")
		assert.is_true(db < drained, "not in dependency order: db was signalled while web drained")
		assert.matches("received SIGQUIT, stopping every process now", u.bg:output())
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 5, "nothing left")
	end)

	it("a second SIGQUIT kills every group at once", function()
		local u = H.up [[
local hum = require "hum"
hum.service "stubborn" { cmd = "trap '' TERM; echo up; while :; do sleep 0.1; done", stop = { grace = 60 } }
]]
		u.bg:wait_output("up")
		u.bg:signal("QUIT")
		u.bg:wait_output("received SIGQUIT")
		u.bg:signal("QUIT")
		assert.are.equal(131, u.bg:wait_exit(20))
		assert.matches("second quit: killing every process group", u.bg:output())
	end)

	it("SIGUSR1 runs the reopen listeners (log rotation) and hum keeps running", function()
		local file, dir, results = S.scenario [[
require("hum.runtime").listen("reopen", function() rec("reopen") end)
hum.service "api" { cmd = { "sleep", "1000" } }
]]
		local u = H.up(S.read(file), { dir = dir })
		u:wait_state("api", "ready")
		u.bg:signal("USR1")
		S.wait(function() return (S.read(results) or ""):find("reopen") end, 20, "the reopen listener")
		u.bg:signal("USR1")
		S.wait(function() return select(2, (S.read(results) or ""):gsub("reopen", "")) == 2 end, 20, "twice")
		assert.matches("received SIGUSR1: reopening log files", u.bg:output())
		assert.are.equal("ready", u:proc("api").state)
		down(u)
	end)

	it("SIGUSR2 prints the processes into hum's output and hum keeps running", function()
		local u = H.up(API .. [[hum.service "later" { cmd = { "sleep", "1000" }, autostart = false }]])
		u:wait_state("api", "ready")
		u.bg:signal("USR2")
		local out = u.bg:wait_output("and 1 not started")
		assert.matches("processes %(SIGUSR2%):", out)
		assert.matches("api%s+ready%s+pid %d+", out)
		assert.is_nil(u.bg:code())
		down(u)
	end)

	it("SIGTSTP suspends hum and every process; SIGCONT resumes them", function()
		local u = H.up(API)
		local api = u:wait_state("api", "ready").pid
		u.bg:signal(20) -- SIGTSTP
		S.wait(function() return pstate(api) == "T" and pstate(u.bg.pid) == "T" end, 20, "api and hum stopped")
		u.bg:signal("CONT")
		S.wait(function() return pstate(api) == "S" and pstate(u.bg.pid) ~= "T" end, 20, "api and hum running again")
		local p = S.wait(function()
			local q = u:proc("api")
			return q and not q.paused and q
		end, 20, "api not paused")
		assert.are.equal("ready", p.state)
		assert.matches("suspended %(SIGTSTP%): 1 process group paused", u.bg:output())
		u.bg:wait_output("resumed: 1 process group continued")
		down(u)
	end)

	it("a process stopped with SIGSTOP shows as paused, and not once continued", function()
		local u = H.up(API)
		local api = u:wait_state("api", "ready").pid
		S.kill(api, "STOP")
		local p = S.wait(function()
			local q = u:proc("api")
			return q and q.paused and q
		end, 20, "api paused")
		assert.are.equal("ready", p.state)
		local rc, out = u:hum({ "ps" })
		assert.are.equal(0, rc, out)
		assert.matches("api%s+paused%s+" .. api, out)
		rc, out = u:hum({ "status", "api" })
		assert.matches("state:%s+ready, paused", out)
		S.kill(api, "CONT")
		S.wait(function()
			local q = u:proc("api")
			return q and q.paused == false
		end, 20, "api not paused")
		-- a paused process still stops (SIGCONT follows its stop signal)
		S.kill(api, "STOP")
		S.wait(function() return u:proc("api").paused end, 20, "paused again")
		down(u)
	end)
end)
