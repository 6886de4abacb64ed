-- Containment: descendants that leave their service's process group AND lose
-- HUM_TOKEN — five kinds (spec/fixtures/escapee.c): a session of their own,
-- the same after a double fork (orphaned at once, adopted by hum), a group of
-- their own in the service's session, and a daemon writing its process title
-- over its environment, also after a double fork.
--
-- With cgroups (root, or a delegated cgroup2): none survives `hum stop`,
-- `hum down` or kill -9 of `hum up`, and `hum stop` of one service leaves
-- another's alone.  Without (HUM_CGROUP=off): `hum stop` finds the one still
-- in the service's session, `hum down` every one (parentage: they are hum's
-- descendants outside hum's own session), kill -9 those whose parent was the
-- service or whose session was its — as the README's "Containment" says.
local S = require "support.hum"

local KINDS = { "setsid", "double", "setpgid", "title", "title-double" }

-- A service that starts the five kinds (pid files in its own directory)
-- and then becomes `sleep`; its shell's pid is written to main.pid.
local function service(name, d)
	os.execute("mkdir -p " .. S.q(d))
	return ([[
hum.service %q { cmd = [=[for m in %s; do $FIX/escapee $m %s/$m.pid & done; echo $$ > %s/main.tmp; mv %s/main.tmp %s/main.pid; exec sleep 1000]=] }
]]):format(name, table.concat(KINDS, " "), d, d, d, d)
end

local function pid_in(path)
	local t = S.read(path)
	return t and t:match("^(%d+)\n") and tonumber(t:match("^(%d+)"))
end

-- name -> pid of each kind, once all five and the main are there
local function pids_of(d)
	local t = { main = pid_in(d .. "/main.pid") }
	for _, k in ipairs(KINDS) do
		t[k] = pid_in(d .. "/" .. k .. ".pid")
		if not t[k] then return nil end
	end
	return t.main and t
end

local function stat(pid)
	local st = S.read("/proc/" .. pid .. "/stat")
	if not st then return nil end
	local pgid, sid = st:match("^%d+ %b() %a %d+ (%d+) (%d+)")
	return tonumber(pgid), tonumber(sid)
end

-- Each escapee left the main's group and carries no HUM_TOKEN: else the
-- spec would not test what it says.
local function assert_escaped(p)
	local main_pgid = stat(p.main)
	for _, k in ipairs(KINDS) do
		local pgid = stat(p[k])
		assert.is_truthy(pgid, k .. " alive")
		assert.are_not.equal(main_pgid, pgid, k .. " left the main's group")
		assert.is_nil((S.read("/proc/" .. p[k] .. "/environ") or ""):find("HUM_TOKEN=", 1, true), k .. " has no token")
	end
end

-- the kinds of p still alive, as a sorted string ("" when none)
local function alive(p, only)
	local t = {}
	for _, k in ipairs(only or KINDS) do
		if S.alive(p[k]) then t[#t + 1] = k end
	end
	return table.concat(t, " ")
end

local function kill_all(...)
	for _, p in ipairs { ... } do
		for _, k in ipairs(KINDS) do
			if p and p[k] and S.alive(p[k]) then S.kill(p[k], "KILL") end
		end
	end
end

-- hum's cgroup directory if p's main is in one hum made, else nil
local function hum_cgroup(p)
	local rel = (S.read("/proc/" .. p.main .. "/cgroup") or ""):match("\n?0::(/[^\n]*hum%-[^/\n]+)/[^/\n]+\n")
	if not rel then return nil end
	for line in (S.read("/proc/self/mountinfo") or ""):gmatch("[^\n]+") do
		local root, mnt = line:match("^%d+ %d+ %S+ (%S+) (%S+) .* %- cgroup2 ")
		if mnt and root == "/" then return mnt .. rel end
	end
end

local function is_dir(path)
	local r = os.execute("test -d " .. S.q(path))
	return r == 0 or r == true
end

-- hum up with two services of five escapees each, stopped and cleaned up
-- after the test; returns h, dir, a, b
local function up(env)
	local dir = S.tmpdir()
	local file = S.config('local hum = require "hum"\n' .. service("a", dir .. "/a") .. service("b", dir .. "/b"), dir)
	local h = S.start({ "up", "-f", file }, { cwd = dir, env = env })
	local a, b
	finally(function() h:close(); kill_all(a, b) end)
	a = S.wait(function() return pids_of(dir .. "/a") end, 30, "a's five escapees")
	b = S.wait(function() return pids_of(dir .. "/b") end, 30, "b's five escapees")
	assert_escaped(a)
	assert_escaped(b)
	return h, dir, a, b
end

local function gone(p, what, only)
	local ok = pcall(S.wait, function() return alive(p, only) == "" end, 10)
	assert.is_true(ok, what .. ": still alive after 10 s: " .. alive(p, only))
end

-- Root with a read-write cgroup2 mount: hum must make cgroups.  Another
-- user may have a delegated subtree: then hum's own choice tells.
local function root_with_cgroup2()
	local ffi = require "ffi"
	local off = os.getenv("HUM_CGROUP")
	if ffi.C.getuid() ~= 0 or off == "off" or off == "0" or off == "no" then return false end
	for line in (S.read("/proc/self/mountinfo") or ""):gmatch("[^\n]+") do
		if line:match("^%d+ %d+ %S+ / %S+ rw[, ].* %- cgroup2 ") then return true end
	end
	return false
end

describe("containment with cgroups", function()
	-- hum's cgroup; the test is reported skipped (pending throws) without
	local function skip_without(a)
		local top = hum_cgroup(a)
		if not top then
			assert.is_false(root_with_cgroup2(), "root with a read-write cgroup2 mount, yet no cgroup")
			pending("cgroup2 is not writable here: hum found descendants by session and parentage")
		end
		return top
	end

	it("leaves none of the five kinds after hum stop, and only the stopped service's", function()
		local h, dir, a, b = up()
		skip_without(a)
		local code, out = S.run({ "stop", "a" }, { cwd = dir })
		assert.are.equal(0, code, out)
		gone(a, "a's escapees after hum stop a")
		assert.are.equal(table.concat(KINDS, " "), alive(b), "b's escapees untouched")
		assert.is_nil(h:code())
	end)

	it("leaves none after hum down, and removes its cgroups", function()
		local h, dir, a, b = up()
		local top = skip_without(a)
		assert.is_true(is_dir(top), top)
		local code, out = S.run({ "down" }, { cwd = dir })
		assert.are.equal(0, code, out)
		h:wait_exit(30)
		gone(a, "a's escapees after hum down")
		gone(b, "b's escapees after hum down")
		S.wait(function() return not is_dir(top) end, 10, top .. " removed")
	end)

	it("leaves none after kill -9 of hum up (the sentinel), and removes its cgroups", function()
		local h, _, a, b = up()
		local top = skip_without(a)
		h:signal("KILL")
		h:wait_exit(10)
		gone(a, "a's escapees after kill -9")
		gone(b, "b's escapees after kill -9")
		S.wait(function() return not is_dir(top) end, 10, top .. " removed by the sentinel")
	end)
end)

describe("containment without cgroups (HUM_CGROUP=off)", function()
	local OFF = { HUM_CGROUP = "off" }

	it("finds the escapee in the service's session at hum stop, and every one at hum down", function()
		local h, dir, a, b = up(OFF)
		assert.is_nil(hum_cgroup(a), "no cgroup")
		local code, out = S.run({ "stop", "a" }, { cwd = dir })
		assert.are.equal(0, code, out)
		gone(a, "a's setpgid escapee after hum stop a", { "setpgid" })
		assert.are.equal(table.concat(KINDS, " "), alive(b), "b's escapees untouched")
		-- the rest left the session and their parent died: hum's as a whole
		code, out = S.run({ "down" }, { cwd = dir })
		assert.are.equal(0, code, out)
		h:wait_exit(30)
		gone(a, "a's escapees after hum down")
		gone(b, "b's escapees after hum down")
	end)

	it("kills after kill -9 those whose parent or session was a service's", function()
		local h, _, a, b = up(OFF)
		h:signal("KILL")
		h:wait_exit(10)
		-- the double-forked ones were hum's orphans: after hum's death its
		-- reaper's, told apart from that reaper's other children by nothing
		local found = { "setsid", "setpgid", "title" }
		gone(a, "a's escapees after kill -9", found)
		gone(b, "b's escapees after kill -9", found)
	end)
end)
