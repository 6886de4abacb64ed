-- bench/sup_cycle.lua — restart and exit-to-reaction latency for
-- build/bench/sup_bench (issue 4).  One service runs
-- `sup_bench --child-stamp SUP_SLEEP`: it sleeps, prints "start exit"
-- (CLOCK_MONOTONIC seconds; exit is read just before it exits) and exits 0;
-- restart policy always with zero backoff.
--   SUP_MODE=restart: only a `start` reaction, recording hum.clock(); the
--     driver pairs run k's exit stamp with run k+1's start.
--   SUP_MODE=exit: only an `exit` reaction, recording hum.clock() first and
--     then the run's stamp (its last log line).
-- After SUP_RUNS runs hum is asked to stop; results go to $SUP_OUT, with
-- hum's CPU time (os.clock) at the config's first line and at the end.
local hum = require "hum"
local first, cpu0 = hum.clock(), os.clock()
local RUNS = tonumber(os.getenv("SUP_RUNS")) or 200
local MODE = os.getenv("SUP_MODE") or "restart"

local out = require "sup_out"

local p = hum.service "c" {
	cmd = { assert(os.getenv("SUP_CHILD"), "SUP_CHILD not set"), "--child-stamp", os.getenv("SUP_SLEEP") or "0" },
	restart = { policy = "always", max = RUNS + 5, backoff = { 0, 0 } },
}

local function exit_stamp(line)
	return line:match("^%S+ (%S+)$")
end

if MODE == "restart" then
	local s, n = {}, 0
	p:on("start", function()
		local t = hum.clock()
		n = n + 1
		s[n] = t
		if n == RUNS then
			local cpu1 = os.clock()
			hum.shutdown(0)
			local buf = { ("first %.9f\ncpu0 %.6f\ncpu1 %.6f\n"):format(first, cpu0, cpu1) }
			for i = 1, n do buf[#buf + 1] = ("s %.9f\n"):format(s[i]) end
			for _, l in ipairs(p:logs { n = RUNS }) do
				local e = exit_stamp(l.line)
				if e then buf[#buf + 1] = "e " .. e .. "\n" end
			end
			out(table.concat(buf))
		end
	end)
else
	local w, e, n = {}, {}, 0
	p:on("exit", function()
		local t = hum.clock()
		n = n + 1
		w[n] = t
		local l = p:logs { n = 1 }[1]
		e[n] = l and exit_stamp(l.line) or "nan"
		if n == RUNS then
			local cpu1 = os.clock()
			hum.shutdown(0)
			local buf = { ("first %.9f\ncpu0 %.6f\ncpu1 %.6f\n"):format(first, cpu0, cpu1) }
			for i = 1, n do buf[#buf + 1] = ("w %.9f\ne %s\n"):format(w[i], e[i]) end
			out(table.concat(buf))
		end
	end)
end
