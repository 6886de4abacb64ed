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
-- truthy value, or records "gave-up what" (support.hum's S.EVENTUALLY).
R.PRELUDE = S.EVENTUALLY

-- hum runs in the current directory (S.run_scenario's default is the
-- config's).
function R.run(body, args, opts)
	opts = opts or {}
	opts.cwd = opts.cwd or "."
	return S.run_scenario(body, args, opts)
end

return R
