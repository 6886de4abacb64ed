-- hum.cli.check — `hum check`: loads the config and prints every process
-- with its dependencies, or the first error as file:line: message.
local config = require "hum.config"
local die = require("hum.cli").die

local M = {}

function M.check(opts)
	local file, err = config.find_and_load(opts.file)
	if not file then return die(1, "%s", err) end
	local define = require "hum.define"
	print(("%s: %d processes, %d groups"):format(file, #define.defs.list, #define.defs.group_list))
	for _, p in ipairs(define.defs.list) do
		local deps = {}
		for _, d in ipairs(p.after) do deps[#deps + 1] = ("%s (%s)"):format(d.name, d.cond) end
		print(("  %-8s %s%s%s"):format(p.kind, p.name, p.scale > 1 and (" x" .. p.scale) or "",
			#deps > 0 and ("  after " .. table.concat(deps, ", ")) or ""))
	end
	for _, g in ipairs(define.defs.group_list) do
		local names = {}
		for _, m in ipairs(g.members) do names[#names + 1] = m.name end
		print(("  group    %s: %s"):format(g.name, table.concat(names, ", ")))
	end
	return 0
end

return M
