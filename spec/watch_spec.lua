-- The `watch` request: the change feed a UI or an agent subscribes to, and
-- `hum ps --watch`, its simplest client.  A change message names the
-- processes whose state changed (log lines are no change), subscribers that
-- do not read are bounded, and the feed ends saying why.
local H = require "support.socket"
local S = H.S

local CONFIG = [[
local hum = require "hum"
hum.service "ticker" { cmd = "while :; do echo tick; sleep 0.02; done", stop = { grace = 2 } }
hum.service "db" { cmd = "echo up; exec sleep 1000", stop = { grace = 2 } }
hum.service "flood" { cmd = { "$FIX/flood", "1000000000" }, autostart = false, stop = { grace = 2 } }
]]

local function rss_kb(pid)
	local t = S.read("/proc/" .. pid .. "/status") or ""
	return tonumber(t:match("VmRSS:%s*(%d+)")) or 0
end

-- The next change message (skipping log lines), or nil, why.
local function next_change(c, timeout)
	local deadline = S.now() + timeout
	while true do
		local left = deadline - S.now()
		if left <= 0 then return nil, "timeout" end
		local m, err = c:read_json(left)
		if not m then return nil, err end
		if m.event == "change" or m["end"] then return m end
	end
end

describe("watch", function()
	local u
	before_each(function()
		u = H.up(CONFIG)
		u:wait_state("db", "ready")
		u:wait_state("ticker", "ready")
	end)
	after_each(function() if u then u:close() end end)

	it("sends every process, then the processes that changed, each in its newest state", function()
		local c = u:connect()
		local first = c:request({ cmd = "watch", id = "w1" })
		assert.is_true(first.ok)
		assert.are.equal("w1", first.id)
		assert.is_true(first.watch)
		local names = {}
		for _, p in ipairs(first.procs) do names[p.name] = p.state end
		assert.are.same({ ticker = "ready", db = "ready", flood = "pending" }, names)
		-- ticker logs all the time: that is no change
		local m, why = next_change(c, 1)
		assert.is_nil(m, "a change message while only log lines were written")
		assert.are.equal("timeout", why)
		assert.are.equal(0, (u:hum({ "stop", "db" })))
		local states, gen = {}, first.generation
		S.wait(function()
			local ch = assert(next_change(c, 20))
			assert.is_true(ch.generation > gen)
			gen = ch.generation
			for _, p in ipairs(ch.procs) do
				assert.are.equal("db", p.name, "only db changed")
				states[#states + 1] = p.state
			end
			return states[#states] == "stopped"
		end, 30, "db stopped in the feed")
		c:close()
	end)

	it("ends the feed with the last states and says why when hum stops", function()
		local c = u:connect()
		assert.is_true(c:request({ cmd = "watch" }).ok)
		u:hum({ "down" })
		local last, stopped = nil, {}
		S.wait(function()
			local m = assert(next_change(c, 20))
			for _, p in ipairs(m.procs or {}) do stopped[p.name] = p.state end
			last = m
			return m["end"]
		end, 30, "the end of the feed")
		assert.are.equal("server stopping", last.reason)
		assert.are.equal("stopped", stopped.db)
		assert.are.equal("stopped", stopped.ticker)
		c:close()
	end)

	it("bounds a subscriber that does not read, and keeps answering others", function()
		local c = u:connect()
		assert.is_true(c:request({ cmd = "watch", logs = true }).ok)
		local before = rss_kb(u.bg.pid)
		assert.are.equal(0, (u:hum({ "start", "flood" })))
		-- the flood writes as fast as hum reads; the subscriber reads nothing
		local max = 0
		for _ = 1, 20 do
			max = math.max(max, rss_kb(u.bg.pid))
			local r = u:ask({ cmd = "ps" }, 10)
			assert.is_true(r and r.ok, "ps answers while a subscriber does not read")
			S.msleep(100)
		end
		assert.is_true(max - before < S.rss_bound(96 * 1024), ("hum grew by %d KiB"):format(max - before))
		-- once it reads again, a change still reaches it (flood stops)
		assert.are.equal(0, (u:hum({ "stop", "flood" })))
		local saw_stop, deadline = false, S.now() + 60
		while not saw_stop and S.now() < deadline do
			local m = assert(c:read_json(20))
			for _, p in ipairs(m.procs or {}) do
				if p.name == "flood" and p.state == "stopped" then saw_stop = true end
			end
		end
		assert.is_true(saw_stop, "flood's stop in the feed")
		c:close()
	end)

	it("rejects a watch whose logs field is not a boolean", function()
		local r = u:ask({ cmd = "watch", logs = "yes" })
		assert.is_false(r.ok)
		assert.matches("logs must be true or false", r.error)
	end)

	it("is what hum ps --watch prints, one line per change, until hum stops", function()
		local out = S.tmpdir() .. "/watch.out"
		os.execute(("cd %s && timeout 30 %s ps --watch > %s 2>&1 &"):format(S.q(u.dir), S.q(S.HUM), S.q(out)))
		S.wait(function() return (S.read(out) or ""):find("NAME", 1, true) end, 20, "the table")
		assert.are.equal(0, (u:hum({ "stop", "db" })))
		S.wait(function() return (S.read(out) or ""):find("db stopped", 1, true) end, 20, "db stopped")
		u:hum({ "down" })
		S.wait(function() return (S.read(out) or ""):find("hum server stopping", 1, true) end, 20, "the end")
		local text = S.read(out)
		assert.matches("\n%d%d:%d%d:%d%d db stopped", text)
	end)
end)
