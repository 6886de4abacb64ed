-- spec/support/procfs.lua — looking at processes from outside, through /proc.
-- `require "support.procfs"` gives P with
--   P.stat(pid)        state letter, parent pid and session id (nil once reaped)
--   P.zombies_of(ppid) pids of the zombies whose parent is ppid
--   P.fds(pid)         the open fds of a process: fd -> link target, and a count
--   P.cmdline(pid)     the argv of a process as an array (nil once gone)
local S = require "support.hum"

local P = {}

-- /proc/<pid>/stat: state letter, parent pid and session id (nil once reaped)
function P.stat(pid)
	local st = S.read("/proc/" .. pid .. "/stat")
	if not st then return nil end
	local state, ppid, _, sid = st:match("^%d+ %b() (%a) (%d+) (%d+) (%d+)")
	return state, tonumber(ppid), tonumber(sid)
end

-- pids of zombies whose parent is ppid
function P.zombies_of(ppid)
	local out = {}
	local p = io.popen("ls /proc")
	for name in p:lines() do
		local pid = tonumber(name)
		if pid then
			local state, parent = P.stat(pid)
			if state == "Z" and parent == ppid then out[#out + 1] = pid end
		end
	end
	p:close()
	return out
end

-- the open fds of a process, read from outside: fd -> link target, count
function P.fds(pid)
	local t, n = {}, 0
	local p = io.popen("cd /proc/" .. pid .. "/fd 2>/dev/null && for f in *; do printf '%s %s\\n' \"$f\" \"$(readlink \"$f\")\"; done")
	for l in p:lines() do
		local fd, target = l:match("^(%d+) (.*)$")
		if fd then
			t[tonumber(fd)] = target
			n = n + 1
		end
	end
	p:close()
	return t, n
end

-- the argv of a process (nil once it is gone)
function P.cmdline(pid)
	local c = S.read("/proc/" .. pid .. "/cmdline")
	if not c then return nil end
	local argv = {}
	for a in c:gmatch("([^%z]*)%z") do argv[#argv + 1] = a end
	return argv
end

return P
