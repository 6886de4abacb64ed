-- hum.messages — what hum says from Lua while it runs, as its own log lines
-- (stream sys, name hum: in the foreground output, `hum logs` and its
-- followers, hum.log):
--   - print() in the config's reactions and timers, or in a module it
--     requires (print writes to stdout otherwise, where it is lost or out of
--     order when stdout is a file, and never reaches `hum logs`);
--   - a process that will never start (a dependency failed, stopped, can
--     never become ready) says why, once per reason.
-- The lifecycle lines (started, ready, exited, stopped) come from C, where
-- they are in order with the processes' output (lua/bind/host.c).
local raw = require "hum.raw"

local M = {}

function M.print(...)
	local parts = {}
	for k = 1, select("#", ...) do parts[k] = tostring((select(k, ...))) end
	raw.log(table.concat(parts, "\t"))
end

function M.attach(runtime)
	_G.print = M.print
	local told = setmetatable({}, { __mode = "k" }) -- instance -> reason said
	runtime.listen("state", function(i, new)
		if new ~= "pending" or not i.wanted then
			told[i] = nil
			return
		end
		local ok, why = runtime.deps_status(i)
		if ok == false and told[i] ~= why then
			told[i] = why
			raw.log(("%s will not start: %s"):format(i.name, why))
		end
	end)
end

return M
