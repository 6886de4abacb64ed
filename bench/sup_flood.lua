-- bench/sup_flood.lua — log throughput for build/bench/sup_bench (issue 4).
-- SUP_K tasks `seq 1 SUP_LINES`; hum's stdout is /dev/null.  When the last
-- one has exited (hum drains a child's pipes before its final state), the
-- reaction records hum's CPU time (os.clock: user+sys of every thread of
-- hum, children excluded) and the lines hum counted.
local hum = require "hum"
local first = hum.clock()
local K = tonumber(os.getenv("SUP_K")) or 4
local LINES = os.getenv("SUP_LINES") or "1000000"

local out = require "sup_out"

-- SUP_LINE_REACTION=1: a line reaction on every task whose pattern no line
-- matches (every line becomes an event for Lua, none runs a coroutine)
local REACT = os.getenv("SUP_LINE_REACTION") == "1"
for i = 1, K do
	local t = hum.task("seq" .. i) { cmd = { "seq", "1", LINES } }
	if REACT then t:on("line", "^never", function() end) end
end

local exited = 0
hum.on("exit", function()
	exited = exited + 1
	if exited == K then
		local cpu, done = os.clock(), hum.clock()
		local lines = 0
		for _, s in ipairs(hum.ps()) do lines = lines + (s.lines or 0) end
		out(("first %.9f\ndone %.9f\ncpu %.9f\nlines %d\n"):format(first, done, cpu, lines))
	end
end)
