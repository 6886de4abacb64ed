-- The working directory is the real one: hum.lua is found from getcwd(),
-- never from a stale $PWD (env -C, a subprocess's cwd=); paths hum prints
-- are absolute; children get PWD naming their own directory; hum.dir is
-- the config's directory.
local S = require "support.hum"

-- The physical path of a directory (what getcwd() returns there).
local function real(dir)
	local p = io.popen("cd " .. S.q(dir) .. " && pwd -P")
	local r = p:read("*l")
	p:close()
	return r
end

-- A project in dir and another one in dir/other, with one process each.
local function two_projects()
	local dir = S.tmpdir()
	os.execute("mkdir -p " .. S.q(dir .. "/other"))
	S.config('local hum = require "hum"\nhum.service "api" { cmd = { "sleep", "1000" } }\n', dir)
	S.config('local hum = require "hum"\nhum.service "unrelated" { cmd = "true" }\nhum.task "t2" { cmd = "true" }\n',
		dir .. "/other")
	return dir, dir .. "/other"
end

describe("the working directory", function()
	it("is where hum check looks for hum.lua, whatever PWD says", function()
		local dir, other = two_projects()
		local code, out = S.run({ "check" }, { cwd = dir, env = { PWD = other } })
		assert.are.equal(0, code, out)
		assert.are.equal(real(dir) .. "/hum.lua: 1 processes, 0 groups", S.lines(out)[1])
		code, out = S.run({ "check" }, { cwd = dir .. "/other", env = { PWD = dir } })
		assert.are.equal(0, code, out)
		assert.matches("^" .. real(other):gsub("%p", "%%%0") .. "/hum%.lua: 2 processes", out)
	end)

	it("is where client commands look for the running hum, whatever PWD says", function()
		local dir, other = two_projects()
		local file = dir .. "/hum.lua"
		local h = S.start({ "up", "-f", file }, { dir = dir })
		finally(function()
			S.run({ "down", "--file", file })
			h:close()
		end)
		S.wait(function()
			local code, out = S.run({ "ps", "--json" }, { cwd = dir, env = { PWD = other } })
			return code == 0 and out:find('"name":"api"', 1, true)
		end, nil, "hum ps with a stale PWD to list api")
		-- and from the other project, with PWD naming the first: not running
		local code, out = S.run({ "ps" }, { cwd = other, env = { PWD = dir } })
		assert.are.equal(3, code, out)
		assert.matches("no running hum for " .. real(other):gsub("%p", "%%%0") .. " ", out)
	end)

	it("makes relative config paths absolute in what hum prints", function()
		local dir = S.tmpdir()
		os.execute("mkdir -p " .. S.q(dir .. "/sub"))
		S.config('local hum = require "hum"\nhum.task "t" { cmd = "true" }\n', dir)
		local code, out = S.run({ "check", "-f", "sub/../hum.lua" }, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.are.equal(real(dir) .. "/hum.lua: 1 processes, 0 groups", S.lines(out)[1])
		S.write(dir .. "/bad.lua", 'local hum = require "hum"\nhum.task "t" { cmd = "true", scale = 0/0 }\n')
		code, out = S.run({ "up", "-f", "bad.lua" }, { cwd = dir .. "/sub", env = { PWD = "/" } })
		assert.are.equal(1, code, out)
		-- looked for from the real directory (bad.lua is one level up)
		assert.matches("cannot open " .. real(dir):gsub("%p", "%%%0") .. "/sub/bad%.lua", out)
		code, out = S.run({ "up", "-f", "../bad.lua" }, { cwd = dir .. "/sub" })
		assert.are.equal(1, code, out)
		assert.matches(real(dir):gsub("%p", "%%%0") .. "/bad%.lua:2: hum%.task \"t\": scale must be", out)
		code, out = S.run({ "ps", "--file", "../hum.lua" }, { cwd = dir .. "/sub" })
		assert.are.equal(3, code, out)
		assert.matches("no running hum for " .. real(dir):gsub("%p", "%%%0") .. " ", out)
	end)

	it("is each child's PWD, and hum.dir is the config's directory", function()
		local dir = S.tmpdir()
		os.execute("mkdir -p " .. S.q(dir .. "/sub") .. " " .. S.q(dir .. "/run"))
		local _, _, results = S.scenario([[
rec("dir", hum.dir)
local function pwd_of(ev) return ev.line:match("^PWD=(.*)") end
local a = hum.task "a" { cmd = { "env" } }
local b = hum.task "b" { cmd = { "env" }, cwd = "sub" }
a:on("line", "^PWD=", function(ev) rec("a", pwd_of(ev)) end)
b:on("line", "^PWD=", function(ev) rec("b", pwd_of(ev)) end)
hum.on("ready", function()
	local r = hum.exec({ "env" }, { cwd = hum.dir .. "/sub" })
	rec("exec", r.stdout:match("\nPWD=([^\n]*)") or r.stdout:match("^PWD=([^\n]*)"))
	hum.shutdown(0)
end)
]], dir)
		-- started from dir/run with a PWD naming somewhere else, config given relatively
		local code, out = S.run({ "up", "-f", "../hum.lua" }, { cwd = dir .. "/run", env = { PWD = "/" } })
		assert.are.equal(0, code, out)
		local r = S.read(results)
		local base = real(dir)
		assert.matches("dir " .. base:gsub("%p", "%%%0") .. "\n", r)
		assert.matches("a " .. base:gsub("%p", "%%%0") .. "\n", r)
		assert.matches("b " .. base:gsub("%p", "%%%0") .. "/sub\n", r)
		assert.matches("exec " .. base:gsub("%p", "%%%0") .. "/sub\n", r)
	end)
end)
