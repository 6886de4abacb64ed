-- hum.cli.up — `hum up`: loads the config, starts the selected processes
-- and their dependencies, opens the control socket (hum.control) and runs
-- the loop in the foreground, or in the background with -d.
local config = require "hum.config"
local die = require("hum.cli").die

local M = {}

function M.up(opts, pos)
	local file, err = config.find_and_load(opts.file)
	if not file then return die(1, "%s", err) end
	local raw = require "hum.raw"
	local runtime = require "hum.runtime"
	local define = require "hum.define"
	local selected = {}
	for _, name in ipairs(pos) do
		local list = runtime.select_defs(name)
		if #list == 0 then return die(2, "nothing matches %q in %s", name, file) end
		for _, p in ipairs(list) do selected[#selected + 1] = p end
	end
	if #pos == 0 then
		for _, p in ipairs(define.defs.list) do
			if p.autostart then selected[#selected + 1] = p end
		end
	end
	-- required after the config: the project may bring its own
	local control = require "hum.control"
	if opts.detach then
		-- the original process returns once the background hum listens
		-- (or failed); the background one goes on from here
		local code = control.detach(file)
		if code then return code end
	end
	local rt = runtime.boot(define.base_dir)
	for _, p in ipairs(selected) do
		for _, i in ipairs(rt:instances(p)) do rt:want(i) end
	end
	if #selected == 0 then
		raw.log("nothing to start")
		return 0
	end
	-- the control socket answers `hum ps`, `hum logs`, ... from other
	-- terminals; it refuses to start if another instance runs here
	local started, serr = control.start(file, opts)
	if not started then return die(1, "%s", serr) end
	rt:evaluate()
	return runtime.run()
end

return M
