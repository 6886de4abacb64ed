-- What hum prints and how it takes lines in: stdout and stderr kept apart,
-- partial and 1 MiB lines, every line of a fast writer, and colour on a
-- terminal (never with NO_COLOR or TERM=dumb).
local H = require "support.socket"
local C = require "support.cli"
local S = H.S

local scenario = S.scenario
local run_tty = C.run_tty
local has_script = C.has_script

describe("hum up", function()
	it("keeps stdout and stderr apart, flushes partial lines, splits a 1 MiB line", function()
		local file, _, results = scenario [[
local p = hum.task "p" {
	cmd = [=[printf 'to out\n'; printf 'to err\n' >&2; head -c 1048576 /dev/zero | tr '\0' x; printf '\n'; printf 'no newline']=],
}
local big, pieces, cont = 0, 0, 0
p:on("line", ".", function(ev)
	if ev.line:match("^x+$") then
		big, pieces = big + #ev.line, pieces + 1
		if ev.continued then cont = cont + 1 end
	else
		rec(ev.line, ev.stream)
	end
end)
p:on("exit", function() rec("big", big, pieces, cont) end)
]]
		local code, out = S.run({ "up", "-f", file })
		assert.are.equal(0, code, out)
		local r = S.read(results)
		assert.matches("to out out", r)
		assert.matches("to err err", r)
		assert.matches("no newline out", r)
		assert.matches("big 1048576 16 15", r)
		assert.matches("p%s+! to err", out)
	end)

	it("delivers every line of a fast writer, in order (200 MB)", function()
		-- the log ring keeps the newest lines (older ones are dropped and
		-- counted); the counters prove none was lost on the way in, and the
		-- tail proves order and content (core/tests/proc_test.c checks every
		-- line of a 2M-line flood one by one)
		local file, dir, results = scenario [[
local f = hum.task "flood" { cmd = "seq 1 25000000" }
f:on("exit", function()
	local st = f:status()
	local tail = f:logs { n = 1000 }
	local ok = #tail == 1000
	for k, l in ipairs(tail) do
		if l.line ~= tostring(25000000 - 1000 + k) then ok = false end
		if k > 1 and l.seq ~= tail[k - 1].seq + 1 then ok = false end
	end
	rec("counts", st.lines, st.bytes, st.dropped + (st.last_seq - st.first_seq + 1), "tail", ok)
end)
]]
		local code = os.execute(("cd %s && timeout 300 %s up -f %s >/dev/null 2>&1"):format(S.q(dir), S.q(S.HUM), S.q(file)))
		assert.is_truthy(code == 0 or code == true)
		-- seq 1 25000000 writes 188,888,897 bytes besides its newlines
		assert.matches("counts 25000000 188888897 25000000 tail true", S.read(results))
	end)
end)

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
