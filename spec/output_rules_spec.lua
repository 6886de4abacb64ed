-- output_spec — the foreground output and hum's own lines: nothing lost to
-- an output that keeps up (a file, a pipe), nothing silent (hum's messages
-- are log lines in `hum logs`, print() in a reaction too), "\r\n" ends a
-- line, one name column, every process's lifecycle visible, and a follower
-- that gets everything until hum stops.
local S = require "support.hum"
local H = require "support.socket"
local cjson = require "cjson"

local q = S.q

-- Runs `hum up -f file` with its stdout into `sink` (a shell fragment such
-- as "> out" or "| cat > out"), in dir; returns the exit code.
local function up_into(file, dir, sink, timeout)
	local cmd = ("cd %s && timeout -k 5 %d %s up -f %s 2>%s %s; echo $?")
		:format(q(dir), timeout or 120, q(S.HUM), q(file), q(dir .. "/err"), sink)
	local p = io.popen(cmd)
	local out = p:read("*a")
	p:close()
	return tonumber(out:match("(%d+)%s*$"))
end

-- Per writer name: are its "line i" lines all there, once and in order?
local function check_floods(text, names, n)
	local want, bad = {}, 0
	for _, name in ipairs(names) do want[name] = 1 end
	for name, i in text:gmatch("%d%d:%d%d:%d%d ([%w%-]+)%s+\226\148\130 line (%d+)\n") do
		i = tonumber(i)
		if want[name] ~= i then bad = bad + 1 end
		want[name] = i + 1
	end
	local missing = 0
	for _, name in ipairs(names) do missing = missing + (n + 1 - want[name]) end
	return missing, bad
end

describe("foreground output", function()
	local N = 250000
	local FLOOD = ([[
local hum = require "hum"
for k = 1, 4 do hum.task("writer-" .. k) { cmd = { "$FIX/flood", "%d" } } end
]]):format(N)
	local names = { "writer-1", "writer-2", "writer-3", "writer-4" }

	for _, case in ipairs {
		{ "into a file, gets every line of four fast writers, in order, and drops nothing", "> %s" },
		{ "into a pipe that keeps up, gets every line too (the writers wait, nothing is dropped)", "| cat > %s" },
	} do
		it(case[1], function()
			local file, dir = S.config(FLOOD)
			assert.are.equal(0, up_into(file, dir, case[2]:format(q(dir .. "/out"))))
			local text = S.read(dir .. "/out")
			local missing, bad = check_floods(text, names, N)
			assert.are.equal(0, missing, "lines missing")
			assert.are.equal(0, bad, "lines out of order or repeated")
			assert.is_nil(text:find("dropped", 1, true), "no line was dropped")
		end)
	end

	it("into a pipe nobody reads, keeps supervising; lines are dropped whole after a stall, counted and said", function()
		local M = 80000
		local file, dir = S.config(([[
local hum = require "hum"
hum.service "flood" { cmd = { "$FIX/flood", "%d" }, restart = "no" }
hum.service "idle" { cmd = "exec sleep 1000" }
]]):format(M))
		local go = dir .. "/go"
		finally(function()
			S.write(go, "")
			S.run({ "down", "-f", file }, { cwd = dir })
		end)
		os.execute(("cd %s && (%s up -f %s 2>&1 | (while [ ! -e %s ]; do sleep 0.1; done; cat > %s)) >/dev/null 2>&1 </dev/null &")
			:format(q(dir), q(S.HUM), q(file), q(go), q(dir .. "/out")))
		-- the control socket answers while the output is stuck
		local ps = S.wait(function()
			local code, out = S.run({ "ps", "--json", "-f", file }, { cwd = dir })
			if code ~= 0 then return nil end
			local t = cjson.decode(out)
			local by = {}
			for _, x in ipairs(t) do by[x.name] = x end
			return by.flood and by.flood.lines > 1000 and by
		end, nil, "hum ps while nobody reads the output")
		assert.are.equal("ready", ps.idle.state)
		-- after the stall (2 s without progress) the writer is let go: it ends
		S.wait(function()
			local code, out = S.run({ "ps", "--json", "-f", file }, { cwd = dir })
			return code == 0 and out:find('"name":"flood"[^}]*"state":"succeeded"')
		end, 60, "the flood to finish while the output is stuck")
		S.write(go, "")
		local code = S.run({ "down", "-f", file }, { cwd = dir })
		assert.are.equal(0, code)
		local ok, text = pcall(S.wait, function()
			local t = S.read(dir .. "/out") or ""
			return t:find("hum stopped", 1, true) and t
		end, 60, "the output to end")
		if not ok then
			local t = S.read(dir .. "/out") or ""
			local p = io.popen("ps aux | grep " .. q(dir) .. " | grep -v grep")
			error(("the output did not end: %d bytes, tail %q; processes:\n%s"):format(#t, t:sub(-300), p:read("*a")))
		end
		local dropped = tonumber(text:match("(%d+) lines dropped from output %(it did not keep up%)"))
		assert.is_truthy(dropped, "a line says how many were dropped")
		local seen, last, torn = 0, 0, 0
		for i in text:gmatch("flood%s+\226\148\130 line (%d+)\n") do
			i = tonumber(i)
			if i <= last then torn = torn + 1 end
			seen, last = seen + 1, i
		end
		assert.are.equal(0, torn)
		-- (the dropped ones may include a few of hum's own lines)
		assert.is_true(seen + dropped >= M and seen + dropped <= M + 5,
			("every line written whole or counted: %d + %d"):format(seen, dropped))
	end)

	it("ends a line at \\r\\n: probes, on(\"line\"), hum logs and --grep never see the \\r", function()
		local u = H.up([[
local hum = require "hum"
local crlf = hum.service "crlf" {
  cmd = "printf 'listening\r\n'; printf 'second\r\n'; printf 'keep\rthis\n'; exec sleep 1000",
  ready = hum.ready.line("listening$", { timeout = 60 }),
}
crlf:on("line", "^second$", function() hum.log.info("second seen") end)
]])
		finally(function() u:close() end)
		u:wait_state("crlf", "ready")
		local code, out = u:hum({ "logs", "crlf", "--json" })
		assert.are.equal(0, code, out)
		local lines = {}
		for l in out:gmatch("[^\n]+") do
			local t = cjson.decode(l)
			if t.line then lines[#lines + 1] = t.line end
		end
		assert.are.same({ "listening", "second", "keep\rthis" }, lines)
		code, out = u:hum({ "logs", "--grep", "listening$" })
		assert.are.equal(0, code, out)
		assert.matches("crlf%s+\226\148\130 listening\n", out)
		S.wait(function()
			local _, o = u:hum({ "logs", "hum" })
			return o:find("second seen", 1, true)
		end, nil, "the on(\"line\") reaction")
	end)

	it("gives every name one column (long ones cut with …), hum's lines too, and shows each lifecycle", function()
		local long = "a-process-with-a-name-of-forty-chars-xyz"
		local file, dir = S.config(([[
local hum = require "hum"
hum.service "abc" { cmd = "echo out-abc; echo err-abc >&2; exec sleep 1000" }
hum.service %q { cmd = "echo out-long; exec sleep 1000" }
hum.service "probed" { cmd = "sleep 0.3; echo up now; exec sleep 1000", ready = hum.ready.line "up now" }
local bad = hum.task "bad" { cmd = "exit 3" }
hum.service "dep" { cmd = "exec sleep 1000", after = { bad = "succeeded" } }
hum.service "dep2" { cmd = "exec sleep 1000", after = { bad = "succeeded" } }
]]):format(long))
		local h = S.start({ "up", "-f", file }, { cwd = dir })
		finally(function() h:close() end)
		h:wait_output("probed: ready", nil, true)
		h:wait_output("dep2 cannot start", nil, true)
		h:signal("INT")
		h:wait_exit()
		local out = h:output()
		local col, lines = nil, 0
		for l in out:gmatch("[^\n]+") do
			local ts, rest = l:match("^(%d%d:%d%d:%d%d )(.*)$")
			if ts then
				-- the separator: the first " │ ", " ! " or " * " after the name
				local c = rest:find(" \226\148\130 ") or rest:find(" ! ") or rest:find(" %* ")
				assert.is_truthy(c, l)
				c = select(2, rest:sub(1, c - 1):gsub("[^\128-\191]", "")) + 1 -- in characters
				col = col or c
				assert.are.equal(col, c, "separator column of: " .. l)
				lines = lines + 1
			end
		end
		assert.is_true(lines >= 12, out)
		assert.are.equal(32 + 1, col, "the name column is 32 wide (the longest, cut)")
		assert.matches("a%-process%-with%-a%-name%-of%-forty%-\226\128\166 \226\148\130 out%-long", out)
		assert.matches("hum%s+%* abc: started %(pid %d+%), ready\n", out)
		assert.matches("hum%s+%* probed: started %(pid %d+%)\n", out)
		assert.matches("hum%s+%* probed: ready %([%d.]+s after it started%)\n", out)
		assert.matches("hum%s+%* bad: exited with code 3\n", out)
		assert.matches("hum%s+%* abc: stopped %(killed by SIGTERM%)\n", out)
		assert.matches("hum%s+%* dep cannot start: bad failed\n", out)
		local _, once = out:gsub("dep cannot start", "")
		assert.are.equal(1, once, "said once")
		assert.matches("abc%s+! err%-abc\n", out)
		assert.matches("hum%s+%* hum stopped %(exit status 130%)\n$", out)
	end)

	it("turns print() in a reaction into a line of hum's own, also when stdout is a file", function()
		local file, dir = S.config([[
local hum = require "hum"
hum.service "s" { cmd = "exec sleep 1000" }
hum.after(0.1, function()
	print("printed", 42, nil)
	hum.after(0.2, function() hum.shutdown() end)
end)
]])
		assert.are.equal(0, up_into(file, dir, "> " .. q(dir .. "/out"), 60))
		local text = S.read(dir .. "/out")
		assert.matches("%d%d:%d%d:%d%d hum %* printed\t42\tnil\n", text)
		-- in order with the rest: before hum's last line
		assert.is_true(text:find("printed", 1, true) < text:find("hum stopped", 1, true))
	end)
end)

describe("hum's own lines in hum logs", function()
	it("are log lines (name hum, stream sys) in hum logs, --json, a selector and a follower", function()
		local u = H.up([[
local hum = require "hum"
hum.service "w" { cmd = "echo hello; exec sleep 1000" }
hum.after(0.2, function() print("from a reaction") end)
]])
		finally(function() u:close() end)
		u:wait_state("w", "ready")
		local code, out = u:hum({ "logs", "--json" })
		assert.are.equal(0, code, out)
		local saw
		S.wait(function()
			code, out = u:hum({ "logs", "--json" })
			for l in out:gmatch("[^\n]+") do
				local t = cjson.decode(l)
				if t.line == "from a reaction" then saw = t end
			end
			return saw
		end, nil, "print() in hum logs")
		assert.are.equal("hum", saw.name)
		assert.are.equal("sys", saw.stream)
		code, out = u:hum({ "logs" })
		assert.matches("w%s+\226\148\130 hello\n", out)
		assert.matches("hum%s+%* w: started %(pid %d+%), ready\n", out)
		assert.matches("hum%s+%* from a reaction\n", out)
		-- `hum logs hum`: only hum's own lines
		code, out = u:hum({ "logs", "hum" })
		assert.are.equal(0, code, out)
		assert.is_nil(out:find("hello", 1, true), out)
		assert.matches("from a reaction", out)
		-- a process selector alone does not bring hum's lines
		code, out = u:hum({ "logs", "w" })
		assert.is_nil(out:find("from a reaction", 1, true), out)
		-- its ring's counters: ps's "hum" object (not a process)
		local ps = u:ask({ cmd = "ps" })
		assert.is_true(ps.hum.lines >= 2 and ps.hum.bytes > 0 and ps.hum.dropped == 0)
		for _, p in ipairs(ps.procs) do assert.are_not.equal("hum", p.name) end
	end)

	it("a follower gets what processes print while stopping, then hum's last line and why it ended", function()
		local dir = S.tmpdir()
		local file = S.write(dir .. "/hum.lua", [[
local hum = require "hum"
hum.service "worker" { cmd = "trap 'echo draining-1; echo draining-2; echo draining-3; exit 0' TERM; echo working; while :; do sleep 0.1; done" }
]])
		local code, out = S.run({ "up", "-d", "-f", file }, { cwd = dir })
		assert.are.equal(0, code, out)
		local pid = tonumber(out:match("pid (%d+)"))
		local f
		finally(function()
			if f then f:close() end
			if S.alive(pid) then S.kill(pid, "KILL") end
		end)
		f = S.start({ "logs", "--file", file, "-f" }, { cwd = dir })
		f:wait_output("worker%s+\226\148\130 working\n")
		code, out = S.run({ "down", "-f", file }, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.are.equal(0, f:wait_exit())
		out = f:output()
		assert.matches("draining%-1\n.*draining%-2\n.*draining%-3\n", out)
		assert.matches("hum%s+%* worker: stopped %(exited with code 0%)\n", out)
		assert.matches("hum%s+%* hum stopped %(exit status 0%)\nhum: end of the logs: hum stopped\n$", out)
	end)
end)
