-- hum.messages — what hum says from Lua while it runs, as its own log lines
-- (stream sys, name hum: in the foreground output, `hum logs` and its
-- followers, hum.log):
--   - print() in the config's reactions and timers, or in a module it
--     requires (print writes to stdout otherwise, where it is lost or out of
--     order when stdout is a file, and never reaches `hum logs`);
--   (a process that can never start says why once: runtime.lua's gate,
--   "X cannot start: <root cause>")
-- The lifecycle lines (started, ready, exited, stopped) come from C, where
-- they are in order with the processes' output (lua/bind/lifecycle.c).
local raw = require "hum.raw"

local M = {}

function M.print(...)
	local parts = {}
	for k = 1, select("#", ...) do parts[k] = tostring((select(k, ...))) end
	raw.log(table.concat(parts, "\t"))
end

function M.attach(runtime)
	_G.print = M.print
end

return M
