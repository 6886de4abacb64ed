-- The control socket stays available and bounded whatever clients do
-- (README "Limits and guarantees", issue #10): followers that went away are
-- let go, a costly --grep is an error reply and never a stall, answers are
-- streamed within a bounded output, replies are valid UTF-8, the client
-- checks the server, and the files in .hum/ are hum's own.
local H = require "support.socket"
local S = H.S
local cjson = H.json
local ffi = require "ffi"

local function nfd(pid)
	local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
	local n = tonumber(p:read("*l"))
	p:close()
	return n or 0
end

local function rss_kb(pid)
	local t = S.read("/proc/" .. pid .. "/status") or ""
	return tonumber(t:match("VmRSS:%s*(%d+)")) or 0
end

-- Strict UTF-8, transcribed from RFC 3629's grammar (section 4) rather
-- than from hum's cleaner (lua/hum/control.lua), so the spec is an oracle
-- of its own: one pattern per production, tried at each position.
local UTF8_SEQ = {
	"[%z\1-\127]",                                    -- UTF8-1
	"[\194-\223][\128-\191]",                         -- UTF8-2
	"\224[\160-\191][\128-\191]",                     -- UTF8-3 (no overlongs)
	"[\225-\236\238\239][\128-\191][\128-\191]",
	"\237[\128-\159][\128-\191]",                     -- (no surrogates)
	"\240[\144-\191][\128-\191][\128-\191]",          -- UTF8-4 (no overlongs)
	"[\241-\243][\128-\191][\128-\191][\128-\191]",
	"\244[\128-\143][\128-\191][\128-\191]",          -- (nothing past U+10FFFF)
}
local function valid_utf8(s)
	local i = 1
	while i <= #s do
		local e
		for _, p in ipairs(UTF8_SEQ) do
			e = select(2, s:find("^" .. p, i))
			if e then break end
		end
		if not e then return false end
		i = e + 1
	end
	return true
end
-- the oracle itself, on the cases the cleaner handles
for bytes, want in pairs { ["a\226\130\172"] = true, ["\237\160\128"] = false, ["\192\128"] = false,
	["\244\144\128\128"] = false, ["\244\143\191\191"] = true, ["\226\130"] = false, ["\255"] = false } do
	assert(valid_utf8(bytes) == want, "valid_utf8 oracle disagrees with RFC 3629 on a test vector")
end

describe("socket limits", function()
	it("lets go of followers that went away, and ps and down still work after 1,100 of them", function()
		local u = H.up([[
local hum = require "hum"
hum.service "quiet" { cmd = "echo hello; exec sleep 1000" }
]])
		finally(function() u:close() end)
		u:wait_state("quiet", { ready = true, running = true })
		local before = nfd(u.bg.pid)
		for _ = 1, 1100 do
			local c = u:connect()
			c:send('{"cmd":"logs","names":["quiet"],"n":1,"follow":true}\n')
			local line = c:read_line(10)
			assert.matches("hello", line or "")
			c:close() -- without a word
		end
		S.wait(function() return nfd(u.bg.pid) < before + 20 end, 30, "hum to close abandoned followers")
		local code, out = u:hum({ "ps" })
		assert.are.equal(0, code, out)
		code, out = u:hum({ "down" })
		assert.are.equal(0, code, out)
		u.bg:wait_exit(30)
	end)

	it("answers a --grep that backtracks without end with an error, and ps meanwhile", function()
		local u = H.up([[
local hum = require "hum"
local xs = string.rep("x", 150)
hum.service "x" { cmd = "for i in 1 2 3; do echo " .. xs .. "zy; done; exec sleep 1000", stop = { grace = 2 } }
]])
		finally(function() u:close() end)
		S.wait(function() local p = u:proc("x") return p and p.lines == 3 end, nil, "x's lines")
		local t0 = S.now()
		local r = u:ask({ cmd = "logs", names = { "x" }, grep = [[(x*)*(x*)*\2\1y]] }, 20)
		assert.is_false(r.ok)
		assert.matches("too costly", r.error)
		assert.is_true(S.now() - t0 < 10, "answered in " .. (S.now() - t0) .. " s")
		-- the pattern's syntax is PCRE2's; a bad pattern is an error
		local c = u:connect()
		c:send(cjson.encode({ cmd = "logs", names = { "x" }, grep = [[^x{150}zy$]] }) .. "\n")
		repeat r = assert(c:read_json(10)) until r.ok ~= nil
		c:close()
		assert.is_true(r.ok, r.error)
		assert.are.equal(3, r.lines)
		r = u:ask({ cmd = "logs", names = { "x" }, grep = "(" })
		assert.is_false(r.ok)
		assert.matches("bad grep pattern", r.error)
		-- and SIGTERM ends hum within the grace whatever a client asked
		c = u:connect()
		c:send(cjson.encode({ cmd = "logs", names = { "x" }, grep = [[(x*)*(x*)*\2\1y]], follow = true }) .. "\n")
		u.bg:signal("TERM")
		t0 = S.now()
		u.bg:wait_exit(10)
		assert.is_true(S.now() - t0 < 5, "exited in " .. (S.now() - t0) .. " s")
		c:close()
	end)

	it("streams a logs answer over many processes complete and in seq order", function()
		local u = H.up([[
local hum = require "hum"
for _, n in ipairs { "a", "b", "c" } do
  hum.service(n) { cmd = "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo " .. n .. " $i; done; exec sleep 1000" }
end
]])
		finally(function() u:close() end)
		S.wait(function()
			local r = u:ask({ cmd = "status", names = { "a", "b", "c" } })
			for _, p in ipairs(r.procs) do if p.lines < 3000 then return false end end
			return true
		end, nil, "9,000 lines")
		local c = u:connect()
		c:send('{"cmd":"logs","n":100000,"id":"big"}\n')
		local last, count, per, own = 0, 0, {}, 0
		while true do
			local v = assert(c:read_json(20))
			if v.ok ~= nil then
				assert.is_true(v.ok)
				assert.are.equal("big", v.id)
				assert.are.equal(count, v.lines)
				break
			end
			assert.is_true(v.seq > last, "seq order")
			last = v.seq
			count = count + 1
			-- hum's own lines (name hum, stream sys) come along: counted apart
			if v.name == "hum" then
				assert.are.equal("sys", v.stream)
				own = own + 1
			else
				local n, i = v.line:match("^(%a) (%d+)$")
				assert.are.equal(v.name, n)
				assert.are.equal((per[n] or 0) + 1, tonumber(i), "no line lost or repeated")
				per[n] = tonumber(i)
			end
		end
		c:close()
		assert.are.equal(9000, count - own)
	end)

	it("holds a bounded amount of memory for clients that do not read", function()
		local u = H.up([[
local hum = require "hum"
hum.service "big" { cmd = [=[python3 -c 'import sys; sys.stdout.write(("\x01" * 1000 + "\n") * 3000)'; exec sleep 1000]=] }
]])
		finally(function() u:close() end)
		S.wait(function() local p = u:proc("big") return p and p.lines == 3000 end, nil, "big's lines")
		local base = rss_kb(u.bg.pid)
		local conns = {}
		for k = 1, 16 do
			conns[k] = u:connect()
			conns[k]:send('{"cmd":"logs","names":["big"],"n":1000000000}\n')
		end
		S.msleep(1500)
		local grown = rss_kb(u.bg.pid) - base
		-- 16 x (256 KiB + a line) plus scratch; each answer is ~6 MB whole
		assert.is_true(grown < 32 * 1024, "hum grew by " .. grown .. " kB")
		assert.are.equal(0, (u:hum({ "ps" })))
		-- a client that reads again gets its whole answer
		local n = 0
		while true do
			local v = assert(conns[1]:read_json(20))
			if v.ok ~= nil then assert.are.equal(n, v.lines) break end
			n = n + 1
		end
		assert.is_true(n > 100, n .. " lines") -- what the ring holds of the 3,000
		for _, c in ipairs(conns) do c:close() end
	end)

	it("answers in valid UTF-8 whatever bytes Lua replies carry", function()
		local u = H.up([[
local hum = require "hum"
hum.service "bad" { cmd = { "/nonexistent-\255-\27]0;pwned\7" } }
hum.service "keep" { cmd = "exec sleep 1000" }
]])
		finally(function() u:close() end)
		u:wait_state("bad", "failed")
		local c = u:connect()
		for _, req in ipairs {
			'{"cmd":"eval","code":"return \'\\\\255\'"}',
			'{"cmd":"start","targets":["bad"]}',
			'{"cmd":"eval","code":"print(\'\\\\254\\\\192\\\\128\') return 1"}',
		} do
			c:send(req .. "\n")
			local line = assert(c:read_line(20))
			assert.is_true(valid_utf8(line), line)
			assert.is_not_nil(cjson.decode(line).ok)
		end
		c:close()
		-- and the CLI prints no terminal escape from a reason
		local code, out = u:hum({ "ps" }, { env = { NO_COLOR = "1" } })
		assert.are.equal(0, code, out)
		assert.is_nil(out:find("\27", 1, true), out)
		assert.matches("\\x1b", out, 1, true)
	end)
end)

describe("the files of .hum/", function()
	it("refuses a symlinked socket without sending anything", function()
		local u = H.up_fixture("srv_basic.lua")
		finally(function() u:close() end)
		local file, dir = S.config('local hum = require "hum"\nhum.service "w" { cmd = "sleep 1" }\n')
		os.execute("mkdir -m 700 " .. S.q(dir .. "/.hum") .. " && ln -s " .. S.q(u.sock) .. " " .. S.q(dir .. "/.hum/hum.sock"))
		local code, out = S.run({ "ps", "-f", file }, { cwd = dir })
		assert.are_not.equal(0, code)
		assert.matches("symbolic link", out)
	end)

	it("never writes through a hard-linked hum.lock", function()
		local file, dir = S.config('local hum = require "hum"\nhum.service "w" { cmd = "exec sleep 1000" }\n')
		local victim = S.tmpdir() .. "/victim"
		S.write(victim, "precious\n")
		os.execute("mkdir -m 700 " .. S.q(dir .. "/.hum") .. " && ln " .. S.q(victim) .. " " .. S.q(dir .. "/.hum/hum.lock"))
		local u = H.up(S.read(file), { dir = dir })
		finally(function() u:close() end)
		u:wait_state("w", { ready = true, running = true })
		assert.are.equal("precious\n", S.read(victim))
		local code, out = u:hum({ "down" })
		assert.are.equal(0, code, out)
		u.bg:wait_exit(30)
		assert.are.equal("precious\n", S.read(victim))
	end)

	it("puts a long project's socket in a private directory, recorded in .hum/, removed at the end", function()
		local dir = S.tmpdir() .. "/" .. ("p"):rep(60) .. "/" .. ("q"):rep(60)
		os.execute("mkdir -p " .. S.q(dir))
		local u = H.up('local hum = require "hum"\nhum.service "s" { cmd = "exec sleep 1000" }\n',
			{ dir = dir, env = { XDG_RUNTIME_DIR = "" } })
		finally(function() u:close() end)
		assert.are.equal(u.sock, S.read(dir .. "/.hum/hum.sock.path"))
		local sockdir = u.sock:match("^(.*)/[^/]+$")
		assert.matches("^/tmp/hum%-%d+%-", sockdir)
		local p = io.popen("stat -c %a " .. S.q(sockdir))
		assert.are.equal("700", p:read("*l"))
		p:close()
		local code, out = u:hum({ "ps" }, { env = { XDG_RUNTIME_DIR = "" } })
		assert.are.equal(0, code, out)
		code, out = u:hum({ "down" }, { env = { XDG_RUNTIME_DIR = "" } })
		assert.are.equal(0, code, out)
		u.bg:wait_exit(30)
		assert.is_false(S.exists(sockdir), sockdir)
		assert.is_false(S.exists(dir .. "/.hum/hum.sock.path"))
	end)
end)
