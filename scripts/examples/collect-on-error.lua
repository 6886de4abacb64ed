-- React to an error line in any process by collecting the last 50 lines of
-- every process into a file (hum-incident-<time>.log next to this config),
-- at most once every 10 seconds.
local hum = require "hum"

local api = hum.service "api" {
	cmd = [[i=0; while :; do i=$((i+1)); echo "api: request $i ok"; [ $((i % 15)) -eq 0 ] && echo "api: ERROR upstream timeout" >&2; sleep 0.2; done]],
}
local worker = hum.service "worker" {
	cmd = [[while :; do echo "worker: tick"; sleep 0.3; done]],
}

local last = 0
local function collect(ev)
	if hum.clock() - last < 10 then return end
	last = hum.clock()
	local file = ("hum-incident-%d.log"):format(os.time())
	local f = assert(io.open(file, "w"))
	f:write(("incident: %s: %s\n\n"):format(ev.name, ev.line))
	for _, st in ipairs(hum.ps()) do
		f:write(("== %s (%s, pid %d)\n"):format(st.name, st.state, st.pid))
		for _, l in ipairs(hum.get(st.name):logs { n = 50 }) do
			f:write(("%s %s %s\n"):format(os.date("%H:%M:%S", math.floor(l.time)), l.stream, l.line))
		end
		f:write("\n")
	end
	f:close()
	hum.log.warn(("%s logged an error; last 50 lines of every process saved to %s"):format(ev.name, file))
end

for _, p in ipairs { api, worker } do
	p:on("line", "ERROR", collect)
end
