-- logfile_spec — `.hum/hum.log` of `hum up -d`: a new, dated file per run
-- (the previous one is hum.log.1), rotated at its size bound, never written
-- through a link or into a file that is not hum's own; and writing that
-- fails (a full disk, a reader gone) is a passing condition: supervision
-- goes on, and writing resumes with a line that says what was not written.
local S = require "support.hum"

local q = S.q

-- `hum up -d` of text in a fresh directory (env: extra variables); returns
-- the config, its directory, and hum's pid; stops it when the test ends,
-- then runs also() (busted keeps one finally per test: the last one given).
local function daemon(text, env, dir, also)
	local file
	file, dir = S.config(text, dir)
	local code, out = S.run({ "up", "-d", "-f", file }, { cwd = dir, env = env })
	assert.are.equal(0, code, out)
	local pid = tonumber(out:match("pid (%d+)"))
	finally(function()
		S.run({ "down", "-f", file }, { cwd = dir })
		if S.alive(pid) then S.kill(pid, "KILL") end
		if also then also() end
	end)
	return file, dir, pid
end

local function down(file, dir, pid)
	local code, out = S.run({ "down", "-f", file }, { cwd = dir })
	assert.are.equal(0, code, out)
	S.wait(function() return not S.alive(pid) end, nil, "hum to exit")
end

local function log_of(dir, suffix) return S.read(dir .. "/.hum/hum.log" .. (suffix or "")) or "" end

describe("hum.log", function()
	it("starts each run afresh with a dated line; the previous run is hum.log.1", function()
		local text = [[
local hum = require "hum"
hum.service "s" { cmd = "echo run-$RUN; exec sleep 1000", env = { RUN = os.getenv("RUN") } }
]]
		local file, dir, pid = daemon(text, { RUN = "one" })
		S.wait(function() return log_of(dir):find("run-one", 1, true) end, nil, "run one's line")
		down(file, dir, pid)
		local _, _, pid2 = daemon(text, { RUN = "two" }, dir)
		S.wait(function() return log_of(dir):find("run-two", 1, true) end, nil, "run two's line")
		local now, before = log_of(dir), log_of(dir, ".1")
		assert.matches("^%d%d:%d%d:%d%d hum %* %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d [+-]%d%d%d%d: hum up %-d %(pid "
			.. pid2 .. "%) for " .. file:gsub("%p", "%%%0"), now)
		assert.is_nil(now:find("run-one", 1, true), "a grep of hum.log finds only this run")
		assert.matches("run%-one", before)
		assert.matches("hum stopped %(exit status 0%)\n$", before)
	end)

	it("rotates at its size bound (HUM_LOG_MAX) to hum.log.1; the new file says where it continues from", function()
		local file, dir = daemon([[
local hum = require "hum"
hum.service "chatty" { cmd = "i=0; while [ $i -lt 4000 ]; do echo chatty line $i; i=$((i+1)); done; exec sleep 1000" }
]], { HUM_LOG_MAX = "20000" })
		S.wait(function() return log_of(dir):find("chatty line 3999", 1, true) end, nil, "the last line")
		local now, before = log_of(dir), log_of(dir, ".1")
		local first = now:match("^[^\n]*")
		assert.is_truthy(first:find("^%d%d:%d%d:%d%d hum%s+%* log continued from .*hum%.log%.1 %(rotated at 20000 bytes%)$"),
			first)
		-- the bound plus one line and the note, however much a slow loop
		-- queued between two writes
		assert.is_true(#now < 20000 + 1000, "bounded: " .. #now)
		assert.is_true(#before >= 20000 and #before < 20000 + 1000, "bounded: " .. #before)
	end)

	it("keeps its bound when hum.log.1 cannot be replaced: the file starts again and says what it dropped", function()
		local dir = S.tmpdir()
		assert(os.execute(("mkdir -m 700 %s && mkdir -p %s"):format(q(dir .. "/.hum"), q(dir .. "/.hum/hum.log.1/sub"))) == 0)
		local file = daemon([[
local hum = require "hum"
hum.service "chatty" { cmd = "i=0; while [ $i -lt 4000 ]; do echo chatty line $i; i=$((i+1)); done; exec sleep 1000" }
]], { HUM_LOG_MAX = "5000" }, dir)
		S.wait(function() return log_of(dir):find("chatty line 3999", 1, true) end, nil, "the last line")
		local now = log_of(dir)
		assert.is_true(#now < 5000 + 1000, "bounded: " .. #now)
		assert.is_truthy(now:match("^[^\n]*"):find("hum%s+%* log cut at 5000 bytes: cannot rotate it %(rename .*hum%.log: Is a directory%); "
			.. "the %d+ bytes before were dropped$"), now:match("^[^\n]*"))
	end)

	it("a first run leaves no hum.log.1 and names none", function()
		local _, dir = daemon([[
local hum = require "hum"
hum.service "s" { cmd = "echo hello; exec sleep 1000" }
]])
		S.wait(function() return log_of(dir):find("hello", 1, true) end, nil, "the log")
		assert.is_nil(S.read(dir .. "/.hum/hum.log.1"))
		assert.is_nil(log_of(dir):find("previous run", 1, true), log_of(dir))
	end)

	for _, value in ipairs { "5x", "abc", "0", "-5", "1e3", " 100", "1023", "99999999999999999999" } do
		it(("refuses HUM_LOG_MAX=%q with a message, before it starts"):format(value), function()
			local file, dir = S.config([[
local hum = require "hum"
hum.service "s" { cmd = "exec sleep 1000" }
]])
			local code, out = S.run({ "up", "-d", "-f", file }, { cwd = dir, env = { HUM_LOG_MAX = value } })
			assert.are.equal(2, code, out)
			assert.matches("HUM_LOG_MAX must be a size from 1K to 1024G %(bytes, or a whole number with K, M or G%), not ", out)
			code, out = S.run({ "ps", "-f", file }, { cwd = dir })
			assert.are.equal(3, code, "nothing started: " .. out)
		end)
	end

	it("takes HUM_LOG_MAX with K, M or G", function()
		local _, dir = daemon([[
local hum = require "hum"
hum.service "chatty" { cmd = "i=0; while [ $i -lt 1000 ]; do echo chatty line $i; i=$((i+1)); done; exec sleep 1000" }
]], { HUM_LOG_MAX = "8K" })
		S.wait(function() return log_of(dir):find("chatty line 999", 1, true) end, nil, "the last line")
		assert.matches("rotated at 8192 bytes", log_of(dir))
	end)

	for _, case in ipairs {
		{ "a symbolic link", function(log, victim) assert(os.execute(("ln -s %s %s"):format(q(victim), q(log))) == 0) end },
		{ "a FIFO", function(log) assert(os.execute("mkfifo " .. q(log)) == 0) end },
		{ "a hard link", function(log, victim) assert(os.execute(("ln %s %s"):format(q(victim), q(log))) == 0) end },
	} do
		it("is replaced, never written through, when it is " .. case[1], function()
			local dir = S.tmpdir()
			assert(os.execute(("mkdir -m 700 %s"):format(q(dir .. "/.hum"))) == 0)
			local victim = S.write(dir .. "/victim", "precious\n")
			case[2](dir .. "/.hum/hum.log", victim)
			local file, _, pid = daemon([[
local hum = require "hum"
hum.service "s" { cmd = "echo hello; exec sleep 1000" }
]], nil, dir)
			S.wait(function() return log_of(dir):find("hello", 1, true) end, nil, "the log")
			assert.matches("hum %* replaced .*hum%.log: it ", log_of(dir))
			assert.are.equal("precious\n", S.read(victim))
			down(file, dir, pid)
			assert.are.equal("precious\n", S.read(victim))
		end)
	end
end)

describe("a failing output", function()
	it("(a reader gone: EPIPE) never stops supervision", function()
		local file, dir = S.config([[
local hum = require "hum"
hum.service "talker" { cmd = "while :; do echo talking; sleep 0.05; done" }
hum.service "quiet" { cmd = "exec sleep 1000" }
]])
		os.execute(("cd %s && (%s up -f %s | head -n 1 > /dev/null) >/dev/null 2>&1 </dev/null &")
			:format(q(dir), q(S.HUM), q(file)))
		finally(function() S.run({ "down", "-f", file }, { cwd = dir }) end)
		local lines = S.wait(function()
			local code, out = S.run({ "ps", "--json", "-f", file }, { cwd = dir })
			local n = code == 0 and tonumber(out:match('"name":"talker"[^}]*"lines":(%d+)'))
			return n and n > 20 and n
		end, nil, "talker to go on after the reader went")
		local code, out = S.run({ "logs", "-n", "5", "--file", file, "talker" }, { cwd = dir })
		assert.are.equal(0, code, out)
		assert.matches("talking", out)
		code, out = S.run({ "logs", "--file", file, "hum" }, { cwd = dir })
		assert.matches("cannot write the output %(Broken pipe%)", out)
		code, out = S.run({ "down", "-f", file }, { cwd = dir })
		assert.are.equal(0, code, out)
	end)

	it("(a full disk) resumes once there is room, with a line that says how many lines were not written", function()
		local uid = io.popen("id -u"):read("*l")
		if uid ~= "0" then
			pending("needs root to mount a small tmpfs")
			return
		end
		local dir = S.tmpdir()
		local m = dir .. "/m"
		assert(os.execute("mkdir " .. q(m)) == 0)
		if os.execute("mount -t tmpfs -o size=256k tmpfs " .. q(m) .. " 2>/dev/null") ~= 0 then
			pending("cannot mount a tmpfs here")
			return
		end
		local file, _, pid = daemon(([[
local hum = require "hum"
hum.service "svc" { cmd = "echo started; while [ ! -e %s/go1 ]; do sleep 0.05; done; i=0; while [ $i -lt 3000 ]; do echo burst line $i padded to take room in the log; i=$((i+1)); done; echo burst-done; while [ ! -e %s/go2 ]; do sleep 0.05; done; echo after-free; exec sleep 1000" }
]]):format(dir, dir), nil, m, function() os.execute("umount -l " .. q(m)) end)
		S.wait(function() return log_of(m):find("started", 1, true) end, nil, "the first line")
		os.execute("cat /dev/zero > " .. q(m .. "/filler") .. " 2>/dev/null")
		S.write(dir .. "/go1", "")
		local function ring_has(s)
			local code, out = S.run({ "logs", "--file", file, "-n", "10000", "svc" }, { cwd = m })
			return code == 0 and out:find(s, 1, true)
		end
		S.wait(function() return ring_has("burst-done") end, nil, "the burst in hum's ring")
		-- every line is in the ring, whatever the disk did
		local code, out = S.run({ "logs", "--file", file, "-n", "10000", "svc" }, { cwd = m })
		local _, burst = out:gsub("burst line %d+", "")
		assert.are.equal(3000, burst)
		os.remove(m .. "/filler")
		S.write(dir .. "/go2", "")
		S.wait(function() return log_of(m):find("after-free", 1, true) end, nil, "hum.log to resume")
		local text = log_of(m)
		local n = tonumber(text:match("\n%d%d:%d%d:%d%d hum %* writing the output works again after [%d.]+s "
			.. "%(No space left on device%): (%d+) lines were not written"))
		assert.is_truthy(n, text:sub(-600))
		assert.is_true(n > 0)
		-- hum's log says when it began to fail
		code, out = S.run({ "logs", "--file", file, "hum" }, { cwd = m })
		assert.matches("cannot write the output %(No space left on device%)", out)
		down(file, m, pid)
	end)
end)
