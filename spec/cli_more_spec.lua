-- More of the client commands: colour on a terminal (through a pty made by
-- util-linux `script`) and never with NO_COLOR; `hum logs`' options, where
-- -f means --follow and the config is given with --file.
local H = require "srv_helpers"
local S = H.S

-- Runs the hum CLI on a pseudo-terminal (stdout and stderr are the pty):
-- exit code, output (with the terminal's \r\n turned back into \n).
local function run_tty(args, opts)
	local cmd = { S.q(S.HUM) }
	for _, a in ipairs(args) do cmd[#cmd + 1] = S.q(a) end
	local env = { "env", "-u", "NO_COLOR", "TERM=xterm" }
	for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. S.q(v) end
	local line = ("cd %s && %s timeout -k 5 60 script -qec %s /dev/null </dev/null 2>&1; echo \"__EXIT:$?\"")
		:format(S.q(opts.cwd), table.concat(env, " "), S.q(table.concat(cmd, " ")))
	local p = io.popen(line)
	local out = p:read("*a")
	p:close()
	local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
	return code, (out:gsub("__EXIT:%d+%s*$", ""):gsub("\r\n", "\n"))
end

local function has_script()
	local r = os.execute("command -v script >/dev/null 2>&1")
	return r == 0 or r == true
end

describe("hum client colour", function()
	local u
	setup(function()
		u = H.up([[
local hum = require "hum"
hum.service "web" { cmd = "echo web up; echo web warn >&2; exec sleep 1000" }
hum.service "later" { cmd = "sleep 1000", autostart = false }
hum.task "once" { cmd = "echo done" }
]])
		u:wait_state("web", { ready = true })
		u:wait_state("once", { succeeded = true })
		S.wait(function() return (u:proc("web") or {}).lines == 2 end, nil, "web's lines")
	end)
	teardown(function() if u then u:close() end end)

	it("ps paints states on a terminal, keeping the columns aligned", function()
		assert.is_true(has_script(), "util-linux script is needed for a pty")
		local code, out = run_tty({ "ps" }, { cwd = u.dir })
		assert.are.equal(0, code, out)
		assert.is_truthy(out:find("\27[32mready\27[0m", 1, true), out)
		assert.is_truthy(out:find("\27[32msucceeded\27[0m", 1, true), out)
		assert.is_truthy(out:find("\27[33mpending\27[0m", 1, true), out)
		-- without the escapes, the same aligned table as on a pipe
		local plain = out:gsub("\27%[[%d;]*m", "")
		local _, piped = u:hum({ "ps" })
		assert.is_nil(piped:find("\27", 1, true))
		local function names(s)
			local t = {}
			for l in s:gmatch("[^\n]+") do t[#t + 1] = l:match("^%S+") end
			return t
		end
		assert.are.same({ "NAME", "web", "later", "once" }, names(plain))
		assert.are.same(names(piped), names(plain))
		local col
		for l in plain:gmatch("[^\n]+") do
			col = col or l:find("STATE", 1, true)
			assert.are.equal(" ", l:sub(col - 1, col - 1), l)
			assert.are_not.equal(" ", l:sub(col, col), l)
		end
	end)

	it("logs paints names and stderr marks on a terminal", function()
		local code, out = run_tty({ "logs", "web" }, { cwd = u.dir })
		assert.are.equal(0, code, out)
		assert.matches("\27%[2m%d%d:%d%d:%d%d\27%[0m \27%[%d+mweb%s*\27%[0m │ web up\n", out)
		assert.matches("\27%[%d+mweb%s*\27%[0m \27%[31m!\27%[0m web warn\n", out)
	end)

	it("uses no colour with NO_COLOR=1 or TERM=dumb, even on a terminal", function()
		for _, env in ipairs { { NO_COLOR = "1" }, { TERM = "dumb" } } do
			for _, args in ipairs { { "ps" }, { "logs" }, { "status", "web" } } do
				local code, out = run_tty(args, { cwd = u.dir, env = env })
				assert.are.equal(0, code, out)
				assert.is_truthy(out:find("web", 1, true), out)
				assert.is_nil(out:find("\27", 1, true), table.concat(args, " ") .. ": " .. out)
			end
		end
	end)
end)

describe("hum logs options", function()
	it("--help shows -f as --follow and the config as --file", function()
		local code, out = S.run({ "logs", "--help" })
		assert.are.equal(0, code, out)
		local usage = out:match("^usage: hum logs[^\n]*\n[^\n]*")
		assert.is_truthy(usage, out)
		assert.is_truthy(usage:find("[--file FILE]", 1, true), usage)
		assert.is_truthy(usage:find("[-f|--follow]", 1, true), usage)
		assert.is_nil(usage:find("[-f FILE]", 1, true), usage)
		assert.matches("\n  %-f, %-%-follow ", out)
		assert.matches("\n%s+%-%-file FILE ", out)
		assert.is_nil(out:find("-f, --file", 1, true), out)
		-- the other client commands do take -f FILE
		_, out = S.run({ "ps", "--help" })
		assert.matches("%-f, %-%-file FILE", out)
	end)

	it("takes the config with --file, and -f follows", function()
		local u = H.up([[
local hum = require "hum"
hum.service "s" { cmd = "echo first; while [ ! -e go ]; do sleep 0.05; done; echo second; exec sleep 1000" }
]])
		local f
		-- (busted keeps one finally per test: the last one given)
		finally(function()
			if f then f:close() end
			u:close()
		end)
		S.wait(function() return (u:proc("s") or {}).lines == 1 end, nil, "the first line")
		-- from elsewhere, the project given with --file (and --file=)
		local code, out = S.run({ "logs", "--file", u.file, "s" }, { cwd = "/" })
		assert.are.equal(0, code, out)
		assert.matches("s%s+│ first\n$", out)
		code, out = S.run({ "logs", "--file=" .. u.file, "-n", "1" }, { cwd = "/" })
		assert.are.equal(0, code, out)
		assert.matches("│ first", out)
		-- -f is --follow: it takes no value, so a file after it is a NAME
		code, out = S.run({ "logs", "-f", u.file }, { cwd = "/" })
		assert.are.equal(3, code, out)
		assert.matches("no hum%.lua", out)
		f = S.start({ "logs", "--file", u.file, "-f", "s" }, { cwd = "/" })
		-- the backlog comes first: once it is printed the follower is attached
		f:wait_output("s%s+│ first\n")
		S.write(u.dir .. "/go", "")
		f:wait_output("s%s+│ first\n[^\n]*s%s+│ second\n")
		assert.is_nil(f:code(), "still following")
	end)
end)
