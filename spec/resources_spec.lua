-- Exhausted resources and hostile reactions: closed standard descriptors at
-- start, the open-file limit, spawns that fail for lack of descriptors, the
-- world snapshot during a burst of spawns, reactions that exhaust the Lua
-- heap, and reactions that fail on and off.
--
-- Every wait polls a condition with a generous deadline; nothing depends on
-- how fast the machine is (the burst spec compares what ps shows with the
-- order of events, not with the clock).
local ffi = require "ffi"
local S = require "support.hum"
local H = require "support.socket"
local run = require "support.scenario".run

pcall(ffi.cdef, [[ long readlink(const char *path, char *buf, unsigned long size); ]])

local q = S.q

-- What /proc/<pid>/fd/<fd> points to ("closed" when it does not exist).
local function fd_target(pid, fd)
	local buf = ffi.new("char[256]")
	local n = ffi.C.readlink(("/proc/%d/fd/%d"):format(pid, fd), buf, 255)
	return n > 0 and ffi.string(buf, n) or "closed"
end

-- Runs a shell script (the redirections and limits S.run cannot express):
-- exit code, output.
local function sh(script)
	local p = io.popen("( " .. script .. " ) 2>&1 </dev/null; echo \"__EXIT:$?\"")
	local out = p:read("*a")
	p:close()
	return tonumber(out:match("__EXIT:(%d+)%s*$")), (out:gsub("__EXIT:%d+%s*$", ""))
end

-- `hum down` for the config in dir, and a wait until the process pid is gone.
local function down(dir, pid)
	local code, out = S.run({ "down" }, { cwd = dir })
	if pid then S.wait(function() return not S.alive(pid) end, 30, "hum to exit") end
	return code, out
end

local function hard_nofile()
	local f = io.open("/proc/self/limits")
	local t = f:read("*a")
	f:close()
	local soft, hard = t:match("Max open files%s+(%S+)%s+(%S+)")
	return tonumber(hard) or math.huge, tonumber(soft)
end

describe("closed standard descriptors", function()
	it("are /dev/null in a foreground hum started with 0, 1 and 2 closed", function()
		local file, dir, results = S.scenario [[
hum.service "web" { cmd = { "$FIX/sleeper" } }
hum.on("ready", function()
	rec("pid", io.open("/proc/self/stat"):read("*l"):match("^%d+"))
end)
]]
		os.execute(("sh -c %s >/dev/null 2>&1 &"):format(
			q(("cd %s && exec %s up -f %s <&- >&- 2>&-"):format(q(dir), q(S.HUM), q(file)))))
		local pid = tonumber(S.wait(function() return (S.read(results) or ""):match("pid (%d+)") end,
			nil, "web to be ready"))
		for fd = 0, 2 do
			assert.are.equal("/dev/null", fd_target(pid, fd), "hum's fd " .. fd)
		end
		local code, out = S.run({ "ps" }, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.matches("web%s+ready", out)
		code, out = down(dir, pid)
		assert.are.equal(0, code, out)
	end)

	it("do not keep hum up -d from returning or its log from getting the output", function()
		local file, dir = S.config [[
local hum = require "hum"
hum.service "web" { cmd = "echo hello-from-web; exec $FIX/sleeper" }
]]
		local code, out = sh(("cd %s && exec %s up -d -f %s >&- 2>&-"):format(q(dir), q(S.HUM), q(file)))
		assert.are.equal(0, code, out)
		S.wait(function() return (S.read(dir .. "/.hum/hum.log") or ""):find("hello-from-web", 1, true) end,
			nil, "web's output in .hum/hum.log")
		code, out = down(dir)
		assert.are.equal(0, code, out)
	end)
end)

describe("open files", function()
	it("raises hum's soft limit to the hard limit; children inherit it", function()
		local hard, soft = hard_nofile()
		if hard <= 256 or soft == nil then
			pending("the hard limit on open files is too low to lower the soft one")
			return
		end
		local want = math.min(hard, 2 ^ 20)
		local file, _, results = S.scenario [[
local t = hum.task "limits" { cmd = "echo child $(ulimit -Sn)" }
t:on("line", "child (%d+)", function(ev, n)
	local f = io.open("/proc/self/limits")
	local s, h = f:read("*a"):match("Max open files%s+(%S+)%s+(%S+)")
	f:close()
	rec("hum", s, h)
	rec("child", n)
end)
]]
		local code, out = sh(("ulimit -Sn 256 && exec %s up -f %s"):format(q(S.HUM), q(file)))
		assert.are.equal(0, code, out)
		local r = S.read(results)
		assert.matches(("hum %d %d"):format(want, hard), r)
		assert.matches(("child %d"):format(want), r)
	end)

	it("retries a spawn that failed for lack of descriptors until they are back", function()
		-- hum's own soft limit is lowered from the config, to about 40
		-- descriptors more than it holds then: 30 services need 60.  A
		-- reaction raises it again once some services wait.
		local code, out, r = run [[
local ffi = require "ffi"
ffi.cdef [=[
struct spec_rlimit { unsigned long cur, max; };
int getrlimit(int, struct spec_rlimit *);
int setrlimit(int, const struct spec_rlimit *);
int fcntl(int, int, ...);
int close(int);
]=]
local F_DUPFD, RLIMIT_NOFILE = 0, 7
local lowest = ffi.C.fcntl(0, F_DUPFD, 0)
ffi.C.close(lowest)
local rl = ffi.new("struct spec_rlimit")
ffi.C.getrlimit(RLIMIT_NOFILE, rl)
local saved = rl.cur
rl.cur = lowest + 40
ffi.C.setrlimit(RLIMIT_NOFILE, rl)
for i = 1, 30 do hum.service("s" .. i) { cmd = { "$FIX/sleeper" } } end

local function states()
	local c, reason, restarts = { ready = 0, backoff = 0, failed = 0 }, nil, 0
	for _, p in ipairs(hum.ps()) do
		c[p.state] = (c[p.state] or 0) + 1
		if p.state == "backoff" then reason = p.reason end
		restarts = restarts + p.restarts
	end
	return c, reason, restarts
end
hum.after(0, function()
	eventually(function()
		local c = states()
		return c.ready > 0 and c.backoff > 0 and c.ready + c.backoff == 30
	end, "some ready and the rest in backoff")
	local c, reason = states()
	rec("short", c.ready, c.backoff, c.failed)
	rec("reason", reason)
	rl.cur = saved
	ffi.C.setrlimit(RLIMIT_NOFILE, rl)
	eventually(function() return states().ready == 30 end, "every service to run")
	local now, _, restarts = states()
	rec("after", now.ready, now.failed, now.backoff, restarts)
	hum.shutdown()
end)
]]
		assert.are.equal(0, code, out)
		assert.is_nil(r:find("gave%-up"), r .. out)
		local waiting = r:match("short %d+ (%d+) 0\n")
		assert.truthy(waiting, r)
		assert.matches("reason cannot spawn now: [%w_]+: Too many open files %(retry %d+ in [%d.]+s%)", r)
		assert.matches("after 30 0 0 0\n", r)
		-- the shortage is a state change logged once per process, not per retry
		assert.are.equal(tonumber(waiting), S.count(out, "cannot spawn now"), out)
	end)
end)

describe("the world snapshot", function()
	it("follows a burst of spawns while it happens, not only when it ends", function()
		local N = 400
		local u = H.up(([[
local hum = require "hum"
hum.service "anchor" { cmd = { "$FIX/sleeper" } }
for i = 1, %d do hum.service("s" .. i) { cmd = { "$FIX/sleeper" }, autostart = false } end
]]):format(N))
		finally(function() u:close() end)
		u:wait_state("anchor", "ready")
		-- One request starts all N in one go on the loop thread; while it
		-- works, ps on another connection must see them start.
		local ctl = u:connect()
		ctl:send('{"id":1,"cmd":"start","targets":["s*"]}\n')
		local c = u:connect()
		local seen, last, middle = {}, -1, false
		S.wait(function()
			local r = c:request({ cmd = "ps" }, 10)
			local n = 0
			for _, p in ipairs(r.procs) do
				if p.name ~= "anchor" and (p.state == "running" or p.state == "ready") then n = n + 1 end
			end
			assert.is_true(n >= last, "ps went backwards")
			last = n
			seen[#seen + 1] = n
			if n > 0 and n < N then middle = true end
			return n == N
		end, 60, "every process to start")
		c:close()
		local reply = ctl:read_json(30)
		ctl:close()
		assert.is_true(reply and reply.ok, "start answered")
		assert.is_true(middle, "ps showed only " .. table.concat(seen, " "))
	end)
end)

describe("the Lua heap", function()
	-- A config whose timer reaction fills the heap (yielding with `how`
	-- between rounds, or not at all), and a second one that waits until
	-- the memory is back, records web's state and ends hum.
	local function hog(prelude, how)
		return prelude .. ([[
hum.service "web" { cmd = { "$FIX/sleeper" } }
hum.after(0, function()
	local hog, i = {}, 0
	while true do
		for _ = 1, 64 do
			i = i + 1
			hog[i] = string.rep("x", 4096) .. i -- 256 KiB per round
		end
		%s
	end
end)
hum.after(0.2, function()
	eventually(function() return collectgarbage("count") < 8 * 1024 end, "the memory back")
	rec("alive", hum.get("web"):status().state)
	hum.shutdown()
end)
]]):format(how)
	end

	for _, how in ipairs { "hum.sleep(0.001)", "" } do
		local what = how ~= "" and "between sleeps" or "without yielding"
		it("stops a reaction that fills it " .. what .. ", and hum goes on", function()
			local code, out, r = run(hog("", how), {}, { env = { HUM_LUA_MEMORY = "32M" } })
			assert.are.equal(0, code, out)
			assert.matches("reaction hum%.after at %S*hum%.lua:%d+ failed: memory limit: the Lua heap holds %d+ MiB", out)
			assert.matches("of its 32 MiB limit", out)
			assert.matches("disabled after exceeding the Lua memory limit", out)
			assert.matches("alive ready", r)
		end)
	end

	it("takes its limit from hum.limits, and refuses nonsense there", function()
		local code, out, r = run(hog('hum.limits { lua_memory = "24M" }\n', "hum.sleep(0.001)"))
		assert.are.equal(0, code, out)
		assert.matches("of its 24 MiB limit", out)
		assert.matches("alive ready", r)
		for value, msg in pairs {
			['"lots"'] = "is not a size",
			["1024"] = "out of range",
			['"2M"'] = "out of range",
			["true"] = "expected bytes",
		} do
			code, out = run("hum.limits { lua_memory = " .. value .. " }\nhum.task 't' { cmd = 'true' }\n")
			assert.are.equal(1, code, out)
			assert.matches("hum%.lua:%d+: hum%.limits: lua_memory: .*" .. msg, out)
		end
		code, out = run("hum.limits { lua_memroy = '64M' }\nhum.task 't' { cmd = 'true' }\n")
		assert.are.equal(1, code, out)
		assert.matches("hum%.lua:%d+: hum%.limits: unknown limit \"lua_memroy\" %(known: lua_memory%)", out)
	end)

	it("fails an allocation past the limit outside a reaction with a message naming the limit", function()
		local code, out = run([[
local t = {}
for i = 1, 1e6 do t[i] = string.rep("y", 4096) .. i end
]], {}, { env = { HUM_LUA_MEMORY = "32M" } })
		assert.are.equal(1, code, out)
		assert.matches("not enough memory", out)
	end)
end)

describe("a reaction that fails on and off", function()
	it("is disabled after 10 failures within 60 s, not only after 5 in a row", function()
		local code, out, r = run [[
local t = hum.task "t" { cmd = "for i in $(seq 60); do echo tick $i; done" }
local runs = 0
t:on("line", "tick", function()
	runs = runs + 1
	rec("ran", runs)
	if runs % 2 == 0 then error("fails every other time") end
end)
]]
		assert.are.equal(0, code, out)
		assert.are.equal(20, S.count(r, "ran %d+"), r)
		assert.matches("disabled after 10 failures within 60s", out)
	end)
end)
