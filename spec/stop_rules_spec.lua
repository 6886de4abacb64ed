-- The stop side of the lifecycle (README "Lifecycle rules"): reverse
-- dependency order (transitive, linear in the size of the config), the stop
-- grace for the whole run (not only its main process), remaining processes,
-- and the exit status of `hum up`.
--
-- Children record what happens to them, with timestamps, in files; orders
-- are checked on those times, never on how long a wait took (bounds are
-- generous: a few seconds more than the grace).
local H = require "support.socket"
local S = H.S
local cjson = H.json

local API = [[
local hum = require "hum"
hum.service "api" { cmd = { "sleep", "1000" } }
]]

-- hum down, then hum up's exit status must be `code` (default 0).
local function down(u, code)
	local rc, out = u:hum({ "down" })
	assert.are.equal(0, rc, out)
	assert.are.equal(code or 0, u.bg:wait_exit(30), u.bg:output())
end

local function marker(what) return ("HUMSTOP_%s_%d_%d"):format(what, os.time(), math.random(1e6)) end

-- "<ns> <name> <event>" lines appended by the children -> time (ms) of
-- name's event, or nil.
local function event_ms(file, name, event)
	for l in (S.read(file) or ""):gmatch("[^\n]+") do
		local t, n, e = l:match("^(%d+) (%S+) (%S+)$")
		if n == name and e == event then return math.floor(tonumber(t) / 1e6) end
	end
end

-- A service script that records when it gets SIGTERM (and, after drain
-- seconds, that it finished draining) in events, then exits 0.
local function recorder(dir, name, drain)
	local path = dir .. "/" .. name .. ".sh"
	S.write(path, ([[
#!/bin/sh
trap 'echo "$(date +%%s%%N) %s got-signal" >>%s; sleep %s; echo "$(date +%%s%%N) %s drained" >>%s; exit 0' TERM INT
echo %s-up
while :; do sleep 1000 & wait $!; done
]]):format(name, S.q(dir .. "/events"), drain, name, S.q(dir .. "/events"), name))
	os.execute("chmod +x " .. S.q(path))
	return path
end

local function procs(u)
	local r = u:ask({ cmd = "ps" })
	local by = {}
	for _, p in ipairs(r and r.procs or {}) do by[p.name] = p end
	return by
end

describe("stop order", function()
	-- db <- migrate (a task, finished) <- web: web drains for 1 s after
	-- SIGTERM; db must get its signal only after web has exited.
	local function stack(dir)
		local db, web = recorder(dir, "db", 0), recorder(dir, "web", 1)
		return ([[
local hum = require "hum"
hum.service "db" { cmd = { %q }, ready = hum.ready.line "db%%-up" }
hum.task "migrate" { cmd = "echo migrated", after = { db = "ready" } }
hum.service "web" { cmd = { %q }, after = { migrate = "succeeded" } }
]]):format(db, web)
	end

	local function check_order(dir)
		local db, web = event_ms(dir .. "/events", "db", "got-signal"), event_ms(dir .. "/events", "web", "drained")
		assert.is_truthy(web, "web never finished draining: " .. (S.read(dir .. "/events") or ""))
		assert.is_truthy(db, "db never got its stop signal")
		assert.is_true(db >= web, ("db was signalled %d ms before web had exited"):format(web - db))
	end

	it("is transitive through a finished task, on Ctrl-C and on hum down", function()
		for _, how in ipairs { "INT", "down" } do
			local dir = S.tmpdir()
			local u = H.up(stack(dir), { dir = dir })
			u:wait_state("web", "ready")
			-- ready means spawned: its TERM trap is set once it printed web-up
			S.wait(function() return (select(2, u:hum { "logs", "web" })):find("web-up", 1, true) end,
				20, "web's trap set")
			assert.are.equal("succeeded", u:proc("migrate").state)
			if how == "INT" then
				u.bg:signal("INT")
				assert.are.equal(130, u.bg:wait_exit(30))
			else
				down(u)
			end
			check_order(dir)
		end
	end)

	it("waits for what remains of a dependent (a launcher's program) before stopping its dependency", function()
		local dir = S.tmpdir()
		local db = recorder(dir, "db", 0)
		local prog = recorder(dir, "prog", 1)
		-- the launcher exits at once on SIGTERM; its program (same group)
		-- drains for 1 s: web has exited only when the program has
		local u = H.up(([[
local hum = require "hum"
hum.service "db" { cmd = { %q }, ready = hum.ready.line "db%%-up" }
hum.service "web" { cmd = "trap 'exit 143' TERM; %s & wait", after = { "db" } }
]]):format(db, prog), { dir = dir })
		u:wait_state("web", "ready")
		u.bg:wait_output("prog%-up")
		local rc, out = u:hum({ "down" })
		assert.are.equal(0, rc, out)
		u.bg:wait_exit(30)
		local d, p = event_ms(dir .. "/events", "db", "got-signal"), event_ms(dir .. "/events", "prog", "drained")
		assert.is_truthy(p, "the program never finished draining")
		assert.is_truthy(d, "db never got its stop signal")
		assert.is_true(d >= p, ("db was signalled %d ms before web's program had exited"):format(p - d))
	end)

	it("takes time linear in the size of the config: hum down with 10,000 defined processes", function()
		-- 10,000 definitions, each after the previous one (a 9,995-long
		-- chain that never started) and 5 running services; the old
		-- shutdown rescanned every process for each one (23 s here)
		local dir = S.tmpdir()
		local u = H.up([[
local hum = require "hum"
for i = 1, 5 do hum.service("run" .. i) { cmd = { "sleep", "1000" } } end
for i = 6, 10000 do
	hum.service("s" .. i) { cmd = { "sleep", "1000" }, autostart = false, after = i > 6 and { "s" .. (i - 1) } or nil }
end
]], { dir = dir })
		S.wait(function()
			local n = 0
			for _, p in pairs(procs(u)) do if p.state == "ready" then n = n + 1 end end
			return n == 5
		end, 60, "the 5 services")
		local t0 = S.now()
		local rc, out = u:hum({ "down" }, { timeout = 60 })
		assert.are.equal(0, rc, out)
		assert.are.equal(0, u.bg:wait_exit(60))
		local dt = S.now() - t0
		assert.is_true(dt < 10, ("hum down took %.1f s"):format(dt)) -- ~0.7 s here
	end)
end)

describe("stop grace", function()
	-- a program that needs 1 s to clean up after SIGTERM, started behind a
	-- shell string and behind a launcher that exits at once on SIGTERM
	local function program(dir, name, ignore)
		local path = dir .. "/" .. name .. ".sh"
		S.write(path, ([[
#!/bin/sh
trap '%s' TERM
echo $$ >%s
while :; do sleep 0.1; done
]]):format(ignore and "" or ("sleep 1; echo clean >" .. S.q(dir .. "/" .. name .. ".done") .. "; exit 0"),
			S.q(dir .. "/" .. name .. ".pid")))
		os.execute("chmod +x " .. S.q(path))
		return path
	end

	it("reaches the program behind a shell or a launcher: it gets the rest of the grace", function()
		local dir = S.tmpdir()
		S.write(dir .. "/launcher.sh", "#!/bin/sh\ntrap 'exit 143' TERM\n\"$@\" &\nwait\n")
		os.execute("chmod +x " .. S.q(dir .. "/launcher.sh"))
		local u = H.up(([[
local hum = require "hum"
hum.service "shell" { cmd = "%s; echo exited", stop = { grace = 5 } }
hum.service "launcher" { cmd = { %q, %q }, stop = { grace = 5 } }
]]):format(program(dir, "shell"), dir .. "/launcher.sh", program(dir, "launched")), { dir = dir })
		S.wait(function() return S.read(dir .. "/shell.pid") and S.read(dir .. "/launched.pid") end, 20, "the programs")
		local rc, out = u:hum({ "stop", "shell", "launcher" }, { timeout = 30 })
		assert.are.equal(0, rc, out)
		assert.is_truthy(S.read(dir .. "/shell.done"), "the program behind sh -c was killed during its cleanup")
		assert.is_truthy(S.read(dir .. "/launched.done"), "the program behind the launcher was killed during its cleanup")
		local l = u:proc("launcher")
		assert.are.equal("stopped", l.state)
		assert.are.equal(143, l.exit_code) -- the main process's own exit
		assert.are.equal(0, l.remaining)
		down(u)
	end)

	it("sends SIGKILL to what remains when the grace runs out, and says so", function()
		local dir = S.tmpdir()
		local u = H.up(([[
local hum = require "hum"
hum.service "stubborn" { cmd = "trap 'exit 143' TERM; %s & wait", stop = { grace = 1 } }
]]):format(program(dir, "prog", true)), { dir = dir })
		local pid = tonumber(S.wait(function() return S.read(dir .. "/prog.pid") end, 20, "the program"))
		local t0 = S.now()
		local rc, out = u:hum({ "stop", "stubborn" }, { timeout = 30 })
		assert.are.equal(0, rc, out)
		local dt = S.now() - t0
		local p = u:proc("stubborn")
		assert.are.equal("stopped", p.state)
		assert.matches("killed after 1s grace", p.reason)
		assert.is_true(dt >= 0.9 and dt < 6, ("stopped after %.1f s (grace 1 s)"):format(dt))
		S.wait(function() return not S.alive(pid) end, 5, "the program gone")
		assert.matches("remaining process%a* still running 1s after SIGTERM: sending SIGKILL", u.bg:output())
		down(u)
	end)
end)

describe("remaining processes", function()
	it("are shown in hum ps and status while they live (remaining, remaining_pids, reason)", function()
		local mark = marker("SHOW")
		local u = H.up(([[
local hum = require "hum"
hum.service "bg" { cmd = "sleep 1000 & echo bg $!", env = { MARK = %q } }
hum.service "keep" { cmd = { "sleep", "1000" } } -- (alone, bg's end would end hum up)
]]):format(mark))
		local bgpid = tonumber(u.bg:wait_output("bg %d+"):match("bg (%d+)"))
		local p = S.wait(function()
			local q = u:proc("bg")
			return q and q.remaining == 1 and q.remaining_pids[1] == bgpid and q
		end, 20, "bg's remaining process in its status")
		assert.are.equal("succeeded", p.state)
		assert.are.equal(cjson.null, p.pid)
		assert.matches("exited with code 0; 1 process remains %(pid " .. bgpid .. "%)", p.reason)
		local rc, out = u:hum({ "ps" })
		assert.are.equal(0, rc, out)
		assert.matches("bg%s+succeeded.*1 process remains", out)
		rc, out = u:hum({ "status", "bg" })
		assert.matches("remaining:%s+1 process after the main one exited %(pid " .. bgpid .. "%)", out)
		-- it ends by itself: the count goes back to 0
		S.kill(bgpid, "KILL")
		p = S.wait(function()
			local q = u:proc("bg")
			return q and q.remaining == 0 and q
		end, 20, "remaining 0")
		assert.are.equal("exited with code 0", p.reason)
		assert.are.equal(0, #p.remaining_pids)
		down(u)
	end)

	it("are stopped within the grace on Ctrl-C and on hum down, and nothing is left", function()
		for _, how in ipairs { "INT", "down" } do
			local mark = marker("STOP")
			local u = H.up(([[
local hum = require "hum"
hum.env { MARK = %q }
hum.service "bg" { cmd = "sleep 1000 & echo bg-up", stop = { grace = 2 } }
hum.service "dd" { cmd = "( setsid sh -c 'echo tick; exec sleep 1000' & ); echo dd-up", stop = { grace = 2 } }
hum.service "keep" { cmd = { "sleep", "1000" }, stop = { grace = 2 } }
]]):format(mark))
			S.wait(function()
				local ps = procs(u)
				return ps.bg and ps.bg.remaining >= 1 and ps.dd and ps.dd.remaining >= 1
			end, 20, "bg and dd showing what remains")
			local t0 = S.now()
			if how == "INT" then
				u.bg:signal("INT")
				assert.are.equal(130, u.bg:wait_exit(30))
			else
				u:hum({ "down" })
				assert.are.equal(0, u.bg:wait_exit(30))
			end
			local dt = S.now() - t0
			assert.is_true(dt < 7, ("%s took %.1f s (grace 2 s)"):format(how, dt))
			S.wait(function() return #S.pids_with_env(mark) == 0 end, 5, "nothing left")
		end
	end)

	it("never keep hum up from returning: it stops them, with their stop signal, on its way out", function()
		local dir = S.tmpdir()
		local mark = marker("END")
		local file = S.config(([[
local hum = require "hum"
hum.task "start-daemon" {
	cmd = "sh -c 'trap \"echo got-term >%s; exit 0\" TERM; echo armed; touch %s; while :; do sleep 0.1; done' & " ..
		"while [ ! -e %s ]; do sleep 0.05; done; echo started",
	env = { MARK = %q },
}
]]):format(dir .. "/daemon.term", dir .. "/armed", dir .. "/armed", mark), dir)
		local h = S.start({ "up", "-f", file })
		assert.are.equal(0, h:wait_exit(30), h:output())
		assert.matches("started", h:output())
		assert.matches("armed", h:output())
		assert.are.equal("got-term\n", S.read(dir .. "/daemon.term"))
		S.wait(function() return #S.pids_with_env(mark) == 0 end, 5, "nothing left")
	end)

	it("of a finished service get the stop signal and the grace on hum stop; its outcome stays", function()
		local dir = S.tmpdir()
		local u = H.up(([[
local hum = require "hum"
hum.service "once" {
	cmd = "sh -c 'trap \"echo left-got-term; exit 0\" TERM; echo armed; while :; do sleep 0.1; done' & echo started",
}
hum.service "keep" { cmd = { "sleep", "1000" } } -- (alone, once's end would end hum up)
]]):format(), { dir = dir })
		u.bg:wait_output("armed")
		S.wait(function() local p = u:proc("once") return p.state == "succeeded" and p.remaining >= 1 end, 20,
			"once succeeded with a remaining process")
		local rc, out = u:hum({ "stop", "once" }, { timeout = 30 })
		assert.are.equal(0, rc, out)
		local p = u:proc("once") -- hum stop returns once nothing remains
		assert.are.equal(0, p.remaining)
		assert.are.equal("succeeded", p.state)
		u.bg:wait_output("left%-got%-term")
		down(u)
	end)
end)

describe("exit status of hum up", function()
	it("is 1 after hum down when something failed during the run", function()
		local u = H.up(API .. [[hum.service "worker" { cmd = "exit 3", restart = { policy = "no" } }]])
		u:wait_state("worker", "failed")
		down(u, 1)
	end)

	it("is 1 when a process failed, even if it was started again and runs", function()
		local dir = S.tmpdir()
		local u = H.up(API .. ([[hum.service "flaky" { cmd = "if [ -e %s ]; then exec sleep 1000; fi; touch %s; exit 3" }]])
			:format(dir .. "/flag", dir .. "/flag"), { dir = dir })
		u:wait_state("flaky", "failed")
		local rc, out = u:hum({ "start", "flaky" })
		assert.are.equal(0, rc, out)
		u:wait_state("flaky", "ready")
		down(u, 1)
	end)

	it("is 0 after hum down when nothing failed; a signal keeps 128+N even after a failure", function()
		local u = H.up(API)
		u:wait_state("api", "ready")
		down(u, 0)

		u = H.up(API .. [[hum.service "worker" { cmd = "exit 3", restart = { policy = "no" } }]])
		u:wait_state("worker", "failed")
		u.bg:signal("TERM")
		assert.are.equal(143, u.bg:wait_exit(30))
	end)
end)
