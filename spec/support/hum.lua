-- spec/support/hum.lua — running the real hum binary from busted specs:
-- `require "support.hum"` gives S with
--   paths         S.HUM, S.FIX (built fixtures), S.ROOT, S.SPECFIX, S.TIMEOUT
--   waiting       S.wait(fn, timeout, what), S.now(), S.msleep(ms)
--   processes     S.alive(pid), S.kill(pid, sig), S.SIG, S.pids_with_env(marker)
--   files, text   S.tmpdir(), S.write, S.read, S.exists, S.file_lines(path),
--                 S.lines(text), S.count(text, pattern), S.q (shell quoting),
--                 S.marker(what) (a string unique to one run of one spec)
--   hum           S.run(args, opts) (synchronous), S.start(args, opts) (in the
--                 background: :output, :wait_output, :code, :signal,
--                 :wait_exit, :close), S.config(text), S.scenario(body)
--
-- Every wait polls a condition with a generous deadline (the suite must not
-- flake on a loaded 2-core machine); nothing waits on a fixed sleep.
local ffi = require "ffi"

ffi.cdef [[
int kill(int pid, int sig);
int poll(void *fds, unsigned long nfds, int timeout);
char *mkdtemp(char *template);
int getuid(void);
]]

local S = {}

S.HUM = os.getenv("HUM_BIN") or "build/hum"
S.FIX = os.getenv("HUM_FIXTURES") or "build/fixtures"
S.ROOT = os.getenv("HUM_ROOT") or "."
S.SPECFIX = S.ROOT .. "/spec/fixtures"
S.TIMEOUT = tonumber(os.getenv("HUM_SPEC_TIMEOUT") or "") or 30
-- "asan" or "tsan" when hum is a sanitizer build (make check-asan/tsan)
S.SAN = os.getenv("HUM_SAN")
-- A bound on hum's resident memory, in KiB: ASan keeps freed memory in its
-- quarantine (256 MiB by default) and adds shadow memory, so there the
-- bound says "bounded" with room for that, not the release build's figure.
function S.rss_bound(kib)
	if S.SAN == "asan" then return kib + 512 * 1024 end
	return kib
end

local SIG = { HUP = 1, INT = 2, QUIT = 3, KILL = 9, USR1 = 10, USR2 = 12, TERM = 15, CONT = 18, STOP = 19 }
S.SIG = SIG

function S.msleep(ms) ffi.C.poll(nil, 0, ms) end

function S.now()
	local f = io.open("/proc/uptime")
	local t = tonumber(f:read("*a"):match("^(%S+)"))
	f:close()
	return t
end

-- Polls fn() until it returns a truthy value or timeout seconds pass.
function S.wait(fn, timeout, what)
	local deadline = S.now() + (timeout or S.TIMEOUT)
	local delay = 5
	while true do
		local v = fn()
		if v then return v end
		if S.now() > deadline then error("timed out waiting for " .. (what or "a condition"), 2) end
		S.msleep(delay)
		delay = math.min(delay * 2, 100)
	end
end

function S.alive(pid)
	if ffi.C.kill(pid, 0) ~= 0 then return false end
	-- a zombie is not alive
	local f = io.open("/proc/" .. pid .. "/stat")
	if not f then return false end
	local st = f:read("*a")
	f:close()
	return not st:match("^%d+ %b() Z")
end

function S.kill(pid, sig) return ffi.C.kill(pid, SIG[sig] or sig) end

function S.tmpdir()
	local buf = ffi.new("char[?]", 64, "/tmp/hum-spec-XXXXXX")
	assert(ffi.C.mkdtemp(buf) ~= nil, "mkdtemp failed")
	return ffi.string(buf)
end

function S.write(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
	return path
end

function S.read(path)
	local f = io.open(path)
	if not f then return nil end
	local t = f:read("*a")
	f:close()
	return t
end

function S.exists(path)
	local f = io.open(path)
	if f then f:close() end
	return f ~= nil
end

-- The lines of a text, or of a file (none when it does not exist), as an array.
function S.lines(text)
	local t = {}
	for l in (text or ""):gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

function S.file_lines(path) return S.lines(S.read(path)) end

-- How many times a Lua pattern matches in a text.
function S.count(text, pattern)
	local n = 0
	for _ in text:gmatch(pattern) do n = n + 1 end
	return n
end

-- A marker for the environment of the processes of one run of one spec.
function S.marker(what)
	return ("HUMSPEC_%s_%d_%d"):format(what, os.time(), math.random(1e6))
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
S.q = q

-- Runs hum synchronously: returns exit code, combined stdout+stderr.
function S.run(args, opts)
	opts = opts or {}
	local cmd = { "cd", q(opts.cwd or "."), "&&" }
	if opts.env then for k, v in pairs(opts.env) do cmd[#cmd + 1] = k .. "=" .. q(v) end end
	cmd[#cmd + 1] = "timeout -k 5 " .. (opts.timeout or 60)
	cmd[#cmd + 1] = q(S.HUM)
	for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
	local p = io.popen(table.concat(cmd, " ") .. " 2>&1 </dev/null; echo \"__EXIT:$?\"")
	local out = p:read("*a")
	p:close()
	local code = tonumber(out:match("__EXIT:(%d+)%s*$"))
	return code, (out:gsub("__EXIT:%d+%s*$", ""))
end

-- A config in a fresh directory; returns its path and the directory.
function S.config(text, dir)
	dir = dir or S.tmpdir()
	local body = text:gsub("%$FIX", S.FIX):gsub("%$SPECFIX", S.SPECFIX)
	return S.write(dir .. "/hum.lua", body), dir
end

-- A config whose reactions can append "key value..." lines to a results
-- file with rec(...); returns the config path, its directory, the results path.
function S.scenario(body, dir)
	dir = dir or S.tmpdir()
	local results = dir .. "/results"
	local text = ([[
local hum = require "hum"
local out = io.open(%q, "a")
local function rec(...)
	local t = {}
	for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
	out:write(table.concat(t, " "), "\n")
	out:flush()
end
]]):format(results) .. body
	return S.config(text, dir), dir, results
end

-- Runs `hum up` (or `args[1]` given as { "run", ... } etc.) on a scenario
-- whose reactions may use rec(...) and eventually(fn, what) — which polls
-- fn() inside a reaction (every 20 ms, up to 30 s) until it returns a
-- truthy value, or records "gave-up what".  Returns the exit code, the
-- output, the results file's text and the directory.  hum runs in the
-- config's directory (unless opts.cwd), so relative paths in reactions and
-- in commands name the same files.
S.EVENTUALLY = [[
local function eventually(fn, what)
	local t0 = hum.clock()
	while true do
		local v = fn()
		if v then return v end
		if hum.clock() - t0 > 30 then rec("gave-up", what) return nil end
		hum.sleep(0.02)
	end
end
]]
function S.run_scenario(body, args, opts)
	local file, dir, results = S.scenario(S.EVENTUALLY .. body)
	local a = { "up", "-f", file }
	for _, x in ipairs(args or {}) do a[#a + 1] = x end
	opts = opts or {}
	opts.cwd = opts.cwd or dir
	local code, out = S.run(a, opts)
	return code, out, S.read(results) or "", dir
end

-- random ports and markers must differ between runs
math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)

local Bg = {}
Bg.__index = Bg

-- Starts hum in the background; output goes to a file.
function S.start(args, opts)
	opts = opts or {}
	local dir = opts.dir or S.tmpdir()
	local h = setmetatable({ dir = dir, out = dir .. "/hum.out", pidf = dir .. "/hum.pid",
		codef = dir .. "/hum.code" }, Bg)
	local cmd = { q(S.HUM) }
	for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
	local env = ""
	if opts.env then for k, v in pairs(opts.env) do env = env .. k .. "=" .. q(v) .. " " end end
	local script = ("cd %s && %s%s >%s 2>&1 </dev/null & echo $! >%s.tmp; mv %s.tmp %s; wait $!; echo $? >%s.tmp; mv %s.tmp %s")
		:format(q(opts.cwd or dir), env, table.concat(cmd, " "), q(h.out), q(h.pidf), q(h.pidf), q(h.pidf),
			q(h.codef), q(h.codef), q(h.codef))
	os.execute("sh -c " .. q(script) .. " >/dev/null 2>&1 </dev/null &")
	h.pid = S.wait(function() return tonumber(S.read(h.pidf) or "") end, 10, "hum to start")
	return h
end

function Bg:output() return S.read(self.out) or "" end

-- Waits until the output matches a Lua pattern (plain=true: a substring).
function Bg:wait_output(pattern, timeout, plain)
	return S.wait(function()
		local o = self:output()
		if o:find(pattern, 1, plain) then return o end
		if self:code() then
			error(("hum exited (code %s) before printing %q; output:\n%s"):format(self:code(), pattern, o), 0)
		end
	end, timeout, "output " .. pattern)
end

function Bg:code() return tonumber(S.read(self.codef) or "") end

function Bg:signal(sig) return S.kill(self.pid, sig) end

function Bg:wait_exit(timeout)
	return S.wait(function() return self:code() end, timeout, "hum to exit")
end

-- Stops hum if still running (after a test) and waits for it.
function Bg:close()
	if not self:code() then
		self:signal("TERM")
		local ok = pcall(self.wait_exit, self, 20)
		if not ok then self:signal("KILL") pcall(self.wait_exit, self, 5) end
	end
end

-- pids of processes whose environment carries HUM_PROCESS (started by hum)
-- and a marker string, read from /proc.
function S.pids_with_env(marker)
	local out = {}
	local p = io.popen("grep -l -a -s -F " .. q(marker) .. " /proc/[0-9]*/environ 2>/dev/null")
	for line in p:lines() do
		local pid = tonumber(line:match("/proc/(%d+)/"))
		if pid and S.alive(pid) then out[#out + 1] = pid end
	end
	p:close()
	return out
end

return S
