-- The control socket at the wire level: newline-delimited JSON over the Unix
-- socket of a real `hum up`, with a raw client (spec/support/socket.lua):
-- requests and errors, limits, many and slow clients, followers, one
-- instance per project, the socket's place and modes, peer credentials.
local H = require "support.socket"
local S = H.S
local cjson = H.json
local ffi = require "ffi"

describe("control socket", function()
	local u
	setup(function()
		u = H.up_fixture("srv_basic.lua")
		u:wait_state("web", { ready = true, running = true })
		u:wait_state("worker.2", { ready = true, running = true })
	end)
	teardown(function() if u then u:close() end end)

	it("lives in .hum/ with modes 0700 and 0600", function()
		local p = io.popen("stat -c %a " .. S.q(u.dir .. "/.hum") .. " " .. S.q(u.sock))
		local modes = p:read("*a")
		p:close()
		assert.are.equal("700\n600\n", modes)
	end)

	it("answers ps with every process and the documented fields", function()
		local r = u:ask({ cmd = "ps", id = 42 })
		assert.is_true(r.ok)
		assert.are.equal(42, r.id)
		assert.is_number(r.generation)
		local names = {}
		for _, p in ipairs(r.procs) do
			names[#names + 1] = p.name
			for _, k in ipairs { "name", "id", "kind", "state", "restarts", "ready", "reason", "lines",
				"bytes", "dropped", "groups", "generation" } do
				assert.is_not_nil(p[k], k)
			end
			for _, k in ipairs { "pid", "exit_code", "signal", "started_at", "group" } do
				assert.is_true(p[k] ~= nil, k) -- present, possibly cjson.null
			end
		end
		assert.are.same({ "web", "db", "worker.1", "worker.2", "later" }, names)
		assert.are.equal("pending", r.procs[5].state)
		assert.are.equal(cjson.null, r.procs[5].pid)
		assert.are.equal("back", r.procs[3].group)
	end)

	it("answers status for names, groups, replicas and globs", function()
		local r = u:ask({ cmd = "status", name = "worker" })
		assert.are.equal(2, #r.procs)
		r = u:ask({ cmd = "status", names = { "back" } })
		assert.are.equal(3, #r.procs)
		r = u:ask({ cmd = "status", names = { "w*" } })
		assert.are.equal(3, #r.procs) -- web, worker.1, worker.2
		r = u:ask({ cmd = "status", name = "nope", id = "x" })
		assert.is_false(r.ok)
		assert.are.equal("x", r.id)
		assert.matches('no process matches "nope"', r.error)
	end)

	it("answers logs with merged lines and an end marker", function()
		S.wait(function() return (u:proc("db") or {}).lines == 2 end, nil, "db's two lines")
		local c = u:connect()
		c:send(cjson.encode({ cmd = "logs", names = { "db" } }) .. "\n")
		local a = c:read_json()
		local b = c:read_json()
		local e = c:read_json()
		c:close()
		-- stdout and stderr are separate pipes: either may be read first
		if a.stream == "err" then a, b = b, a end
		assert.are.same({ "out", "db ready" }, { a.stream, a.line })
		assert.are.same({ "err", "db warning" }, { b.stream, b.line })
		assert.are_not.equal(a.seq, b.seq)
		assert.are.equal("db", a.name)
		assert.is_number(a.time)
		assert.is_true(e.ok and e["end"])
		assert.are.equal(2, e.lines)
	end)

	it("answers malformed, unknown and incomplete requests with errors and keeps the connection", function()
		local c = u:connect()
		for _, bad in ipairs { "{", "nonsense", "[1]", '{"cmd":1}', '{"cmd":"fly"}', '{"id":[],"cmd":"ps"}',
			'{"cmd":"logs","n":-3}', '{"cmd":"logs","grep":"("}', '{"cmd":"status"}', '"\\ud800"' } do
			c:send(bad .. "\n")
			local r, line = c:read_json(10)
			assert(r, "no answer to " .. bad)
			assert.is_false(r.ok, line)
			assert.is_string(r.error)
		end
		local r = c:request({ cmd = "ping" })
		assert.is_true(r.pong)
		c:close()
	end)

	it("refuses an oversized request with an error, then closes", function()
		local c = u:connect()
		c:nonblocking()
		local chunk = '{"cmd":"ps","pad":"' .. ("x"):rep(65536)
		local total = 0
		local deadline = S.now() + 30
		local r
		-- keep writing until the server answers (it stops reading at the limit)
		while total < 3 * 1024 * 1024 and S.now() < deadline do
			total = total + c:send(chunk)
			r = c:read_line(0.01)
			if r then break end
		end
		r = r or c:read_line(10)
		assert.is_truthy(r, "no answer")
		local v = cjson.decode(r)
		assert.is_false(v.ok)
		assert.matches("too large", v.error)
		assert.is_true(total > 1024 * 1024)
		assert.is_true(c:wait_eof(10))
		c:close()
	end)

	it("answers a truncated request (half-closed without newline) with an error", function()
		local c = u:connect()
		c:send('{"cmd":"ps"')
		c:shutdown()
		local r = c:read_json(10)
		assert.is_false(r.ok)
		assert.matches("truncated", r.error)
		assert.is_true(c:wait_eof(10))
		c:close()
		-- a complete request before the half-close is answered
		c = u:connect()
		c:send('{"cmd":"ping"}\n')
		c:shutdown()
		r = c:read_json(10)
		assert.is_true(r.ok)
		assert.is_true(c:wait_eof(10))
		c:close()
	end)

	it("serves 50 concurrent clients", function()
		-- web ticks every 50 ms: the logs request below asks for 5 lines
		S.wait(function() return (u:proc("web") or {}).lines >= 5 end, 30, "5 lines of web")
		local conns = {}
		for k = 1, 50 do
			conns[k] = u:connect()
			conns[k]:send('{"cmd":"ps"}\n{"cmd":"status","name":"web"}\n{"cmd":"logs","names":["web"],"n":5}\n')
		end
		for k = 1, 50 do
			local c = conns[k]
			local ps = c:read_json(30)
			assert.is_true(ps.ok and #ps.procs == 5)
			local st = c:read_json(30)
			assert.are.equal("web", st.procs[1].name)
			local n = 0
			while true do
				local l = c:read_json(30)
				assert.is_table(l)
				if l.ok then break end
				n = n + 1
			end
			assert.are.equal(5, n)
			c:close()
		end
	end)

	it("keeps serving while a client never reads its answers", function()
		local lazy = u:connect()
		lazy:nonblocking()
		local req = ('{"cmd":"ps"}\n'):rep(100)
		local sent, rounds = 0, 0
		-- write until the socket is full both ways: the server has stopped
		-- reading from this client
		repeat
			local n = lazy:send(req)
			sent = sent + n
			rounds = rounds + 1
		until n < #req or rounds > 100000
		assert.is_true(sent > 0)
		local t0 = S.now()
		for _ = 1, 20 do
			local r = u:ask({ cmd = "ps" }, 10)
			assert.is_true(r.ok)
		end
		assert.is_true(S.now() - t0 < 10)
		-- commands still reach the loop thread
		local r = u:ask({ cmd = "eval", code = "1 + 2" }, 30)
		assert.are.equal("3", r.result)
		-- the lazy client is answered once it reads
		local got = lazy:read_json(30)
		assert.is_true(got.ok)
		lazy:close()
	end)

	it("forwards commands to the loop thread and echoes the id", function()
		local r = u:ask({ cmd = "eval", id = "e", code = "print('a', 1) return 6 * 7" })
		assert.is_true(r.ok)
		assert.are.equal("e", r.id)
		assert.are.equal("a\t1\n", r.output)
		assert.are.equal("42", r.result)
		r = u:ask({ cmd = "eval", code = "error('bad thing')" })
		assert.is_false(r.ok)
		assert.matches("bad thing", r.error)
		r = u:ask({ cmd = "eval", code = "local x = " })
		assert.is_false(r.ok)
		r = u:ask({ cmd = "stop", targets = { "nothing-here" } })
		assert.is_false(r.ok)
		assert.matches("nothing matches", r.error)
		r = u:ask({ cmd = "signal", signal = "NOPE", targets = { "web" } })
		assert.is_false(r.ok)
	end)

	it("streams new lines to a follower", function()
		local f = u:connect()
		f:send(cjson.encode({ cmd = "logs", names = { "web" }, n = 0, follow = true }) .. "\n")
		local first = f:read_json(30)
		assert.matches("^tick %d+$", first.line)
		local second = f:read_json(30)
		assert.is_true(second.seq > first.seq)
		f:close()
	end)
end)

describe("a follower that stops reading", function()
	it("loses lines (and is told so), never blocks hum", function()
		local u = H.up([[
local hum = require "hum"
hum.service "tick" { cmd = "i=0; while true; do i=$((i+1)); echo t$i; sleep 0.02; done" }
hum.task "noisy" { cmd = { "$FIX/flood", "1500000" }, autostart = false }
]])
		finally(function() u:close() end)
		local f = u:connect()
		f:send('{"cmd":"logs","names":["noisy","tick"],"n":0,"follow":true}\n')
		-- the follower is registered once a tick line is queued for it
		S.wait(function() return ((u:proc("tick") or {}).lines or 0) > 3 end, 30, "tick lines")
		local r = u:ask({ cmd = "start", targets = { "noisy" } }, 60)
		assert.is_true(r.ok)
		local t0 = S.now()
		local p = u:wait_state("noisy", "succeeded", 120)
		assert.are.equal(1500000, p.lines)
		-- hum kept answering and supervising
		local before = u:proc("tick").lines
		S.wait(function() return u:proc("tick").lines > before + 2 end, 30, "ticks after the flood")
		assert.is_true(S.now() - t0 < 120)
		-- now read: lines, then a notice of what was dropped
		local saw_drop, n = false, 0
		local deadline = S.now() + 120
		while not saw_drop and S.now() < deadline do
			local line = f:read_line(30)
			assert.is_truthy(line, "follower stream ended")
			if line:sub(1, 11) == '{"dropped":' then
				saw_drop = cjson.decode(line).dropped > 0
			else
				n = n + 1
			end
		end
		assert.is_true(saw_drop)
		assert.is_true(n > 0)
		f:close()
	end)
end)

describe("one instance per project", function()
	it("refuses a second hum up and starts nothing", function()
		local mark = "srvmark" .. tostring(math.random(1e9))
		local u = H.up(([[
local hum = require "hum"
hum.service "s" { cmd = "exec sleep 1000", env = { MARK = %q } }
]]):format(mark))
		finally(function() u:close() end)
		u:wait_state("s", { ready = true, running = true })
		assert.are.equal(1, #S.pids_with_env(mark))
		local code, out = S.run({ "up", "-f", u.file })
		assert.are.equal(1, code, out)
		assert.matches("already running", out)
		assert.are.equal(1, #S.pids_with_env(mark))
		-- and the first one still answers
		assert.is_true(u:ask({ cmd = "ping" }).ok)
	end)

	it("replaces a stale socket left by a crashed hum", function()
		local mark = "srvstale" .. tostring(math.random(1e9))
		local u = H.up(([[
local hum = require "hum"
hum.service "s" { cmd = "exec sleep 1000", env = { MARK = %q } }
]]):format(mark))
		u:wait_state("s", { ready = true, running = true })
		u.bg:signal("KILL")
		u.bg:wait_exit(30)
		for _, pid in ipairs(S.pids_with_env(mark)) do S.kill(pid, "KILL") end
		assert.is_true(os.execute("test -S " .. S.q(u.sock)) == 0, "the socket file stays behind")
		local code, out = u:hum({ "ps" })
		assert.are.equal(3, code, out)
		assert.matches("stale socket", out)
		local u2 = H.up(S.read(u.file), { dir = u.dir })
		finally(function() u2:close() end)
		u2:wait_state("s", { ready = true, running = true })
		assert.matches("stale control socket", u2.bg:output())
		code, out = u2:hum({ "ps" })
		assert.are.equal(0, code, out)
	end)

	it("uses a short runtime path when the project path is too long for a socket", function()
		local dir = S.tmpdir() .. "/" .. ("p"):rep(60) .. "/" .. ("q"):rep(60)
		os.execute("mkdir -p " .. S.q(dir))
		local u = H.up([[
local hum = require "hum"
hum.service "s" { cmd = "exec sleep 1000" }
]], { dir = dir })
		finally(function() u:close() end)
		assert.is_nil(u.sock:find(dir, 1, true), u.sock)
		local code, out = u:hum({ "ps", "--json" })
		assert.are.equal(0, code, out)
		assert.matches('"name":"s"', out)
		assert.is_true(os.execute("test -e " .. S.q(dir .. "/.hum/hum.sock")) ~= 0, "no socket under the long path")
	end)
end)

describe("peer credentials", function()
	local root = ffi.C.getuid() == 0
	local has_setpriv = os.execute("command -v setpriv >/dev/null 2>&1") == 0

	it("refuses a client of another uid", function()
		if not (root and has_setpriv) then
			pending("needs root and setpriv to run a client as nobody")
			return
		end
		local u = H.up_fixture("srv_basic.lua")
		finally(function() u:close() end)
		-- let nobody reach the socket, so that only SO_PEERCRED stands in the way
		os.execute(("chmod 755 %s && chmod 711 %s && chmod 666 %s"):format(S.q(u.dir), S.q(u.dir .. "/.hum"), S.q(u.sock)))
		local cmd = ("cd %s && setpriv --reuid=nobody --regid=nogroup --clear-groups %s ps 2>&1; echo __EXIT:$?")
			:format(S.q(u.dir), S.q(S.HUM))
		local p = io.popen(cmd)
		local out = p:read("*a")
		p:close()
		local code = tonumber(out:match("__EXIT:(%d+)"))
		assert.are.equal(1, code, out)
		-- the client checks the server first (SO_PEERCRED on its side) and
		-- sends nothing; a raw client gets the server's own refusal at once
		assert.matches("the server runs as uid %d+, not as uid %d+; refusing to talk to it", out)
		cmd = ("setpriv --reuid=nobody --regid=nogroup --clear-groups /usr/bin/python3 -c %s %s 2>&1")
			:format(S.q("import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
				.. "print(s.makefile().readline())"), S.q(u.sock))
		p = io.popen(cmd)
		out = p:read("*a")
		p:close()
		assert.matches("permission denied", out)
		-- the owner is still served
		assert.is_true(u:ask({ cmd = "ping" }).ok)
	end)
end)
