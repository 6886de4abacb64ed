-- spec/support/scenario.lua — one `hum up` of a config whose reactions
-- record what they see.
-- `require "support.scenario"` gives R with
--   R.run(body, args, opts)  writes body as a scenario (support.hum's
--                            S.scenario: `hum` and rec(...) in scope), runs
--                            `hum up -f FILE ARGS...` to its end and returns
--                            exit code, output, the recorded lines, the dir
--   R.PRELUDE                prepended to every body: eventually(fn, what)
--
-- Reactions wait on events (hum.wait) or poll a condition with a generous
-- deadline (`eventually`), never on a fixed delay.
local S = require "support.hum"

local R = {}

-- eventually(fn, what) polls fn() inside a reaction until it returns a
-- truthy value, or records "gave-up what".
R.PRELUDE = [[
local function eventually(fn, what)
	local t0 = hum.clock()
	while true do
		local v = fn()
		if v then return v end
		if hum.clock() - t0 > 30 then rec("gave-up", what) return nil end
		hum.sleep(0.02)
	end
end
]]

function R.run(body, args, opts)
	local file, dir, results = S.scenario(R.PRELUDE .. body)
	local a = { "up", "-f", file }
	for _, x in ipairs(args or {}) do a[#a + 1] = x end
	local code, out = S.run(a, opts)
	return code, out, S.read(results) or "", dir
end

return R
