-- Configs: `hum check` accepts a valid one and reports every kind of error
-- as file:line: message; modules next to the config; finding hum.lua; and
-- `hum up` on a broken config starts nothing.
local S = require "support.hum"

local marker = S.marker
local exists = S.exists

local function check(text)
	local file = S.config(text)
	local code, out = S.run({ "check", "-f", file })
	return code, out, file
end

describe("hum check", function()
	it("accepts a valid config and prints the graph", function()
		local code, out = check [[
local hum = require "hum"
local db = hum.service "db" { cmd = "sleep 100", ready = hum.ready.tcp(5432) }
hum.task "migrate" { cmd = { "true" }, after = { db = "ready" }, desc = "migrate" }
hum.group "all" { db, "migrate" }
]]
		assert.are.equal(0, code, out)
		assert.matches("2 processes, 1 groups", out)
		assert.matches("migrate%s+after db %(ready%)", out)
		assert.matches("group%s+all: db, migrate", out)
	end)

	it("requires modules that sit next to the config, and names their file:line on error", function()
		local dir = S.tmpdir()
		os.execute("mkdir -p " .. dir .. "/lib")
		S.write(dir .. "/lib/services.lua", [[
local hum = require "hum"
return function(n)
	for i = 1, n do hum.service("s" .. i) { cmd = "sleep 100" } end
end
]])
		S.write(dir .. "/broken.lua", "local x = {}\nreturn x.y.z\n")
		local file = S.config('require "lib.services"(3)\n', dir)
		local code, out = S.run({ "check", "-f", file }, { cwd = "/" })
		assert.are.equal(0, code, out)
		assert.matches("3 processes", out)
		file = S.config('require "broken"\n', dir)
		code, out = S.run({ "check", "-f", file }, { cwd = "/" })
		assert.are.equal(1, code, out)
		assert.matches("broken%.lua:2: attempt to index", out)
	end)

	local cases = {
		{ "a syntax error", "local x = = 1\n", ":1:" },
		{ "an unknown field", 'local hum = require "hum"\n\nhum.service "a" { cmd = "x", comand = 1 }\n', ':3: hum.service "a": unknown field "comand"' },
		{ "a wrong type", 'local hum = require "hum"\nhum.service "a" { cmd = "x", cwd = 5 }\n', ":2: hum.service \"a\": field cwd must be a string, not a number" },
		{ "a duplicate name", 'local hum = require "hum"\nhum.service "a" { cmd = "x" }\nhum.task "a" { cmd = "y" }\n', ':3: duplicate name "a" %(first defined at .-:2%)' },
		{ "a missing cmd", 'local hum = require "hum"\nhum.service "a" { cwd = "." }\n', ":2: hum.service \"a\": cmd is required" },
		{ "an unknown dependency", 'local hum = require "hum"\nhum.service "a" { cmd = "x", after = { b = "ready" } }\n', ':2: "a" depends on unknown process "b"' },
		{ "a bad condition", 'local hum = require "hum"\nhum.service "a" { cmd = "x", after = { b = "up" } }\n', ":2: after.b: condition must be" },
		{ "a cycle", 'local hum = require "hum"\nhum.service "a" { cmd = "x", after = { "b" } }\nhum.service "b" { cmd = "x", after = { "c" } }\nhum.service "c" { cmd = "x", after = { "a" } }\n', ":%d: dependency cycle: a %-> b %-> c %-> a" },
		{ "reading an undefined global", 'local hum = require "hum"\nlocal x = undefined_thing\n', ":2: undefined global 'undefined_thing'" },
		{ "assigning a global", 'local hum = require "hum"\n\nfoo = 1\n', ":3: assignment to undefined global 'foo'" },
		{ "a bad restart policy", 'local hum = require "hum"\nhum.service "a" { cmd = "x", restart = "sometimes" }\n', ":2: restart.policy must be" },
		{ "an unknown stop signal", 'local hum = require "hum"\nhum.service "a" { cmd = "x", stop = { signal = "NOPE" } }\n', ":2: stop.signal: unknown signal" },
		{ "a bad line pattern", 'local hum = require "hum"\nhum.service "a" { cmd = "x", ready = hum.ready.line "(" }\n', ":2: hum.ready.line: bad pattern" },
		{ "an unknown group member", 'local hum = require "hum"\nhum.service "a" { cmd = "x" }\nhum.group "g" { "a", "zz" }\n', ':3: group "g": unknown process "zz"' },
		{ "a runtime error", 'local hum = require "hum"\nlocal t = nil\nprint(t.x)\n', ":3: attempt to index" },
	}
	for _, c in ipairs(cases) do
		it("reports " .. c[1] .. " as file:line: message", function()
			local code, out, file = check(c[2])
			assert.are.equal(1, code, out)
			assert.matches("hum: [^\n]*hum%.lua" .. c[3], out)
			assert.is_truthy(out:find(file:match("[^/]+$"), 1, true))
		end)
	end

	it("fails clearly without a config", function()
		local dir = S.tmpdir()
		local code, out = S.run({ "check" }, { cwd = dir })
		assert.are.equal(1, code)
		assert.matches("no hum.lua here or in a parent directory", out)
	end)

	it("finds hum.lua in a parent directory", function()
		local _, dir = S.config('local hum = require "hum"\nhum.task "t" { cmd = "true" }\n')
		os.execute("mkdir -p " .. dir .. "/a/b")
		local code, out = S.run({ "check" }, { cwd = dir .. "/a/b" })
		assert.are.equal(0, code, out)
		assert.matches("1 processes", out)
	end)
end)

describe("hum up", function()
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
end)
