-- Reading the logs back: `hum logs` (merged, filtered, --json, --follow,
-- its options) against a running `hum up`, and p:logs in a reaction.
local H = require "support.socket"
local run = require "support.scenario".run
local S = H.S
local cjson = H.json

local json_lines = require "support.cli".json_lines

describe("hum client commands", function()
	local u
	setup(function()
		u = H.up_fixture("srv_basic.lua")
		u:wait_state("web", { ready = true, running = true })
		u:wait_state("worker.2", { ready = true, running = true })
		S.wait(function() return (u:proc("db") or {}).lines == 2 end, nil, "db's lines")
		S.wait(function() return (u:proc("web") or {}).lines >= 5 end, nil, "web's ticks")
		S.wait(function() return (u:proc("worker.2") or {}).lines == 1 end, nil, "worker 2's line")
	end)
	teardown(function() if u then u:close() end end)

	it("logs prints recent lines, merged and filtered", function()
		local code, out = u:hum({ "logs", "db" })
		assert.are.equal(0, code, out)
		assert.matches("%d%d:%d%d:%d%d db%s+│ db ready", out)
		assert.matches("%d%d:%d%d:%d%d db%s+! db warning", out)
		code, out = u:hum({ "logs", "-n", "3", "web" })
		assert.are.equal(0, code, out)
		local n = 0
		for _ in out:gmatch("tick %d+") do n = n + 1 end
		assert.are.equal(3, n)
		code, out = u:hum({ "logs", "back", "--grep", "warn|worker 2" })
		assert.are.equal(0, code, out)
		assert.matches("db warning", out)
		assert.matches("worker 2 up", out)
		assert.is_nil(out:find("db ready", 1, true))
		code, out = u:hum({ "logs", "--stream", "err" })
		assert.are.equal(0, code, out)
		assert.matches("db warning", out)
		assert.is_nil(out:find("tick", 1, true))
		code, out = u:hum({ "logs", "--since", "1h", "db" })
		assert.matches("db ready", out)
		code, out = u:hum({ "logs", "--since", "2999-01-01", "db" })
		assert.are.equal(0, code, out)
		assert.are.equal("", out)
	end)

	it("logs --json prints one object per line", function()
		local code, out = u:hum({ "logs", "--json", "-n", "4" })
		assert.are.equal(0, code, out)
		local t = json_lines(out)
		assert.are.equal(4, #t)
		for k, l in ipairs(t) do
			assert.is_number(l.seq)
			assert.is_number(l.time)
			assert.is_string(l.name)
			assert.is_string(l.line)
			assert.is_truthy(l.stream == "out" or l.stream == "err")
			if k > 1 then assert.is_true(l.seq > t[k - 1].seq) end
		end
		assert.matches('^{"seq":%d+,"time":[%d.]+,"name":"[^"]+","stream":"%a+","line":', out)
	end)
end)

describe("hum logs --follow", function()
	it("prints new lines and ends when hum stops", function()
		local u = H.up_fixture("srv_basic.lua")
		finally(function() u:close() end)
		u:wait_state("web", { ready = true, running = true })
		local f = S.start({ "logs", "-f", "-n", "0", "web" }, { cwd = u.dir })
		finally(function() f:close() end)
		local first = tonumber(f:wait_output("tick (%d+)"):match("tick (%d+)"))
		S.wait(function()
			local last
			for n in f:output():gmatch("tick (%d+)") do last = tonumber(n) end
			return last and last >= first + 3
		end, nil, "more ticks")
		local code, out = u:hum({ "down" })
		assert.are.equal(0, code, out)
		assert.are.equal(0, f:wait_exit(30), f:output())
		u.bg:wait_exit(30)
		code, out = u:hum({ "ps" })
		assert.are.equal(3, code, out)
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

describe("helpers", function()
	it("filters p:logs by pattern and stream, then keeps the last n", function()
		-- stdout and stderr are two pipes: their lines keep their order
		-- within a stream, not across streams
		local code, out, r = run [[
local t = hum.task "t" { cmd = "echo out-a; echo err-a >&2; echo out-b; echo err-b >&2; echo other" }
local function show(tag, list, sorted)
	local o = {}
	for _, l in ipairs(list) do o[#o + 1] = l.stream .. ":" .. l.line .. ":" .. l.name end
	if sorted then table.sort(o) end
	rec(tag, table.concat(o, ","))
end
t:on("exit", function()
	show("all", t:logs(), true)
	show("grep", t:logs { grep = "%-a$" }, true)
	show("err", t:logs { stream = "err" })
	show("out-grep", t:logs { stream = "out", grep = "^out" })
	show("out-grep-1", t:logs { stream = "out", grep = "^out", n = 1 })
	show("err-1", t:logs { stream = "err", n = 1 })
	show("none", t:logs { stream = "err", grep = "other" })
end)
]]
		assert.are.equal(0, code, out)
		assert.matches("all err:err%-a:t,err:err%-b:t,out:other:t,out:out%-a:t,out:out%-b:t\n", r)
		assert.matches("grep err:err%-a:t,out:out%-a:t\n", r)
		assert.matches("err err:err%-a:t,err:err%-b:t\n", r)
		assert.matches("out%-grep out:out%-a:t,out:out%-b:t\n", r)
		assert.matches("out%-grep%-1 out:out%-b:t\n", r)
		assert.matches("err%-1 err:err%-b:t\n", r)
		assert.matches("none \n", r)
	end)
end)
