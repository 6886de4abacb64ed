-- Selectors (core/state/select.h): one table of selector -> expected names,
-- run against every kind of command.  What `hum status --json SEL` shows
-- (read on the api thread) is what `hum stop SEL` stops (the loop thread),
-- what hum.start/hum.stop select from Lua, and what `hum up SEL` starts; a
-- selector that matches nothing, or that is refused (over the length bound,
-- a [ without ]), is an error in every one of them.  The matcher's own cases
-- (sets, escapes, agreement with fnmatch, time at the bound) are in
-- core/tests/select_test.c.
local H = require "support.socket"
local S = H.S
local cjson = H.json

local CONFIG = [[
local hum = require "hum"
local function svc(name, t)
	t.cmd = { "sleep", "1000" }
	t.stop = { grace = 2 }
	return hum.service(name)(t)
end
svc("web", { scale = 2, group = "front" })
svc("api", { group = "back" })
svc("api.2", { group = "back" })      -- defined on its own: not a replica of api
svc("db", { groups = { "back", "data" } })
svc("worker", { scale = 2 })
svc("cron", {})
]]

local ALL = "web.1 web.2 api api.2 db worker.1 worker.2 cron"
local STARS = ("*"):rep(55)

-- selector -> names it selects (in definition order), or { error = pattern }
local CASES = {
	{ "api", "api" },                          -- a name; api.2 is not its replica
	{ "api.2", "api.2" },
	{ "web", "web.1 web.2" },                  -- the base of replicas
	{ "web.2", "web.2" },                      -- one replica
	{ "web.[12]", "web.1 web.2" },             -- a glob over replica names
	{ "w?b", "web.1 web.2" },                  -- a glob over a replica base
	{ "*er", "worker.1 worker.2" },
	{ "back", "api api.2 db" },                -- a group
	{ "[bd]a*", "api api.2 db" },              -- a glob over groups (back, data)
	{ "api*", "api api.2" },
	{ "*", ALL },
	{ STARS .. "a", "db" },                    -- 55 stars: only the group "data" ends in a
	{ STARS .. "z", { error = "matches" } },   -- ... and nothing ends in z
	{ "ghost", { error = "matches" } },
	{ "all", { error = "matches" } },          -- not a keyword: use *
	{ ("*"):rep(1025), { error = "longer than 1024 bytes" } },
	{ "web.[12", { error = "a %[ without its %]" } },
}

local function label(sel) return #sel > 24 and sel:sub(1, 12) .. "...(" .. #sel .. " bytes)" or sel end

local function sorted(list)
	table.sort(list)
	return table.concat(list, " ")
end

local function words(s)
	local t = {}
	for w in s:gmatch("%S+") do t[#t + 1] = w end
	return sorted(t)
end

-- names of `hum status --json` output (one object, or an array)
local function status_names(out)
	local v = cjson.decode(out)
	if v.name then v = { v } end
	local t = {}
	for _, p in ipairs(v) do t[#t + 1] = p.name end
	return sorted(t)
end

local LIVE = { running = true, ready = true }

describe("selectors", function()
	local u

	local function live()
		local code, out = u:hum({ "ps", "--json" })
		assert.are.equal(0, code, out)
		local t = {}
		for _, p in ipairs(cjson.decode(out)) do
			if LIVE[p.state] then t[p.name] = true end
		end
		return t
	end

	local function all_live()
		return S.wait(function()
			local l = live()
			for n in ALL:gmatch("%S+") do
				if not l[n] then return false end
			end
			return true
		end, nil, "every process running")
	end

	setup(function()
		u = H.up(CONFIG)
		all_live()
	end)
	teardown(function() if u then u:close() end end)

	for _, case in ipairs(CASES) do
		local sel, want = case[1], case[2]
		if type(want) == "string" then
			it(("%q: status and stop select [%s]"):format(label(sel), want), function()
				local t0 = S.now()
				local code, out = u:hum({ "status", "--json", sel })
				assert.are.equal(0, code, out)
				assert.are.equal(words(want), status_names(out), "hum status --json " .. label(sel))
				assert.is_true(S.now() - t0 < 10, "status answered in time")

				local before = live()
				t0 = S.now()
				code, out = u:hum({ "stop", sel })
				assert.are.equal(0, code, out)
				assert.is_true(S.now() - t0 < 20, "stop answered in time")
				local printed = {}
				for name in out:gmatch("([^%s]+)[^\n]*\n?") do printed[#printed + 1] = name end
				assert.are.equal(words(want), sorted(printed), "hum stop " .. label(sel) .. " reported")
				local after, stopped = live(), {}
				for n in pairs(before) do
					if not after[n] then stopped[#stopped + 1] = n end
				end
				assert.are.equal(words(want), sorted(stopped), "hum stop " .. label(sel) .. " stopped")

				code, out = u:hum({ "start", "*" })
				assert.are.equal(0, code, out)
				all_live()
			end)
		else
			it(("%q: status and stop both refuse it"):format(label(sel)), function()
				local before = live()
				local code, out = u:hum({ "status", "--json", sel })
				assert.are.equal(1, code, out)
				assert.matches(want.error, out)
				code, out = u:hum({ "stop", sel })
				assert.are.equal(1, code, out)
				assert.matches(want.error, out)
				local after = live()
				for n in pairs(before) do assert.is_true(after[n], n .. " still runs") end
			end)
		end
	end

	it("hum.stop and hum.start from Lua select what the table says", function()
		-- runtime.select is what hum.start/stop/restart call; hum.stop's
		-- count and message come through it
		local lines = {}
		for _, case in ipairs(CASES) do
			lines[#lines + 1] = ("%q"):format(case[1])
		end
		local code = ([[
local runtime = require "hum.runtime"
for _, sel in ipairs { %s } do
	local list, err = runtime.select(sel)
	local names = {}
	for _, i in ipairs(list) do names[#names + 1] = i.name end
	table.sort(names)
	print(err and ("error " .. err) or table.concat(names, " "))
end]]):format(table.concat(lines, ", "))
		local rc, out = u:hum({ "eval", code })
		assert.are.equal(0, rc, out)
		local got = {}
		for l in out:gmatch("([^\n]*)\n") do got[#got + 1] = l end
		for k, case in ipairs(CASES) do
			local want = case[2]
			if type(want) == "string" then
				assert.are.equal(words(want), got[k], label(case[1]))
			elseif want.error == "matches" then
				assert.are.equal("", got[k], label(case[1]))
			else
				assert.is_truthy((got[k] or ""):find("^error .*" .. want.error), label(case[1]) .. ": " .. tostring(got[k]))
			end
		end

		rc, out = u:hum({ "eval", "return hum.stop 'web.[12]'" })
		assert.are.equal(0, rc, out)
		assert.matches("^2", out)
		rc, out = u:hum({ "eval", ("return hum.stop(%q)"):format(("*"):rep(1025)) })
		assert.matches("nil\t\"hum.stop: bad selector .*longer than 1024 bytes", out)
		rc, out = u:hum({ "eval", "return hum.start 'front'" })
		assert.are.equal(0, rc, out)
		assert.matches("^2", out)
		all_live()
	end)
end)

describe("hum up SEL", function()
	-- before registration: the same C test on each instance's name, base
	-- and groups (runtime.select_defs)
	local TASKS = [[
local hum = require "hum"
hum.task "web" { cmd = "echo ran $HUM_PROCESS", scale = 2, group = "front" }
hum.task "api" { cmd = "echo ran $HUM_PROCESS", group = "back" }
hum.task "api.2" { cmd = "echo ran $HUM_PROCESS", group = "back" }
hum.task "db" { cmd = "echo ran $HUM_PROCESS", groups = { "back", "data" } }
]]

	local function ran(sel)
		local file = S.config(TASKS)
		local code, out = S.run({ "up", "-f", file, sel })
		local t = {}
		for n in out:gmatch("ran (%S+)") do t[#t + 1] = n end
		return code, sorted(t), out
	end

	it("starts what the selector selects", function()
		for _, case in ipairs {
			{ "api", "api" }, { "web.[12]", "web.1 web.2" }, { "w?b", "web.1 web.2" },
			{ "[bd]a*", "api api.2 db" }, { STARS .. "a", "db" },
		} do
			local code, names, out = ran(case[1])
			assert.are.equal(0, code, out)
			assert.are.equal(words(case[2]), names, case[1])
		end
	end)

	it("refuses a selector that matches nothing or is too long", function()
		for _, sel in ipairs { "ghost", ("*"):rep(1025) } do
			local code, names, out = ran(sel)
			assert.are.equal(2, code, out)
			assert.matches("nothing matches", out)
			assert.are.equal("", names)
		end
	end)
end)
