-- How hum itself ends: SIGTERM, SIGINT (and a second one), SIGHUP, each
-- with its exit code, and no process left behind — also after kill -9 of
-- hum, through its guard.
local S = require "support.hum"

local scenario = S.scenario

describe("hum up", function()
	it("stops everything and leaves no process behind on SIGTERM", function()
		local marker = "HUMSPEC_TERM_" .. tostring(os.time()) .. math.random(1e6)
		local file = scenario(([[
hum.service "a" { cmd = "echo a-up; sleep 1000", env = { MARKER = %q } }
hum.service "b" { cmd = "trap '' TERM; echo b-up; sleep 1000 & wait", env = { MARKER = %q }, stop = { grace = 0.5 } }
]]):format(marker, marker))
		local h = S.start({ "up", "-f", file })
		h:wait_output("a%-up")
		h:wait_output("b%-up")
		assert.is_true(#S.pids_with_env(marker) >= 2)
		h:signal("TERM")
		assert.are.equal(143, h:wait_exit())
		S.wait(function() return #S.pids_with_env(marker) == 0 end, 10, "children gone")
	end)

	it("exits 130 on SIGINT while running", function()
		local file = scenario [[hum.service "a" { cmd = "echo up; sleep 1000" }]]
		local h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("INT")
		assert.are.equal(130, h:wait_exit())
	end)

	it("kills every group at once on a second SIGINT, and exits 129 on SIGHUP", function()
		local file = scenario [[
hum.service "stubborn" { cmd = "trap '' TERM INT; echo up; while :; do sleep 0.1; done", stop = { grace = 60 } }
]]
		local h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("INT")
		h:wait_output("received SIGINT, stopping")
		h:signal("INT")
		assert.are.equal(130, h:wait_exit(20))
		assert.matches("second interrupt: killing every process group", h:output())

		file = scenario [[hum.service "a" { cmd = "echo up; sleep 1000" }]]
		h = S.start({ "up", "-f", file })
		h:wait_output("up")
		h:signal("HUP")
		assert.are.equal(129, h:wait_exit())
	end)

	it("leaves no process behind within 2 s of kill -9", function()
		local marker = "HUMSPEC_KILL9_" .. tostring(os.time()) .. math.random(1e6)
		local file = scenario(([[
hum.service "a" { cmd = "echo a-up; sleep 1000", env = { MARKER = %q } }
hum.service "b" { cmd = "setsid sh -c 'sleep 1000' & echo b-up; wait", env = { MARKER = %q } }
hum.service "c" { cmd = "trap '' TERM HUP INT; echo c-up; sleep 1000 & wait", env = { MARKER = %q } }
]]):format(marker, marker, marker))
		local h = S.start({ "up", "-f", file })
		h:wait_output("a%-up")
		h:wait_output("b%-up")
		h:wait_output("c%-up")
		S.wait(function() return #S.pids_with_env(marker) >= 5 end, 10, "descendants running")
		h:signal("KILL")
		local t0 = S.now()
		S.wait(function() return #S.pids_with_env(marker) == 0 end, 10, "descendants gone")
		assert.is_true(S.now() - t0 <= 2.5, "took " .. (S.now() - t0) .. " s")
	end)
end)
