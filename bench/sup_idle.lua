-- bench/sup_idle.lua — idle cost for build/bench/sup_bench (issue 4).
-- SUP_N services `sleep 1000`; once all are ready hum says so in $SUP_OUT,
-- and the driver samples hum's CPU time and RSS over a window, then sends
-- SIGTERM.
local hum = require "hum"
local N = tonumber(os.getenv("SUP_N")) or 10
local OUT = assert(os.getenv("SUP_OUT"), "SUP_OUT not set")

for i = 1, N do
	hum.service("idle" .. i) { cmd = { "sleep", "1000" } }
end

hum.on("ready", function()
	local f = assert(io.open(OUT, "a"))
	f:write(("ready %.9f\n"):format(hum.clock()))
	f:close()
end)
