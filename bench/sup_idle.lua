-- bench/sup_idle.lua — idle cost for build/bench/sup_bench (issue 4).
-- SUP_N services `sleep 1000`; once all are ready hum says so in $SUP_OUT,
-- and the driver samples hum's CPU time and RSS over a window, then sends
-- SIGTERM.
local hum = require "hum"
local N = tonumber(os.getenv("SUP_N")) or 10
local out = require "sup_out"

for i = 1, N do
	hum.service("idle" .. i) { cmd = { "sleep", "1000" } }
end

hum.on("ready", function()
	out(("ready %.9f\n"):format(hum.clock()))
end)
