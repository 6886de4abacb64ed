-- bench/sup_burst.lua — spawn burst for build/bench/sup_bench (issue 4).
-- SUP_N services `sleep 1000` (argv, no shell); the N-th `start` reaction
-- records the time and asks hum to stop everything.  The driver measures
-- from its clock before exec ($SUP_T0) and until hum has exited.
-- Results go to $SUP_OUT as "key value" lines (monotonic seconds).
local hum = require "hum"
local first = hum.clock()
local N = tonumber(os.getenv("SUP_N")) or 100

local out = require "sup_out"

for i = 1, N do
	hum.service("s" .. i) { cmd = { "sleep", "1000" } }
end

local started = 0
hum.on("start", function()
	started = started + 1
	if started == N then
		local running = hum.clock()
		local stop = hum.clock()
		hum.shutdown(0)
		out(("first %.9f\nrunning %.9f\nstop %.9f\n"):format(first, running, stop))
	end
end)
