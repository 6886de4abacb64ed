-- hum.config — finding and loading hum.lua with strict globals.
--
-- The file runs in its own environment: reading or assigning a global that
-- does not exist is an error with file:line (a typo is not a silent nil).
-- Every error is returned as "file:line: message"; nothing has started yet.
local define = require "hum.define"
local util = require "hum.util"

local M = {}

-- hum.lua in start (default: the real working directory) or a parent.
function M.find(start)
	local dir = start or util.cwd()
	while true do
		local f = util.resolve(dir, "hum.lua")
		if util.exists(f) then return f end
		if dir == "/" or dir == "." or dir == "" then return nil end
		dir = util.dirname(dir)
	end
end

function M.strict_env(hum)
	local env = { hum = hum }
	return setmetatable(env, {
		__index = function(_, k)
			local v = _G[k]
			if v == nil then error(("undefined global '%s'"):format(tostring(k)), 2) end
			return v
		end,
		__newindex = function(_, k)
			error(("assignment to undefined global '%s' (declare it local)"):format(tostring(k)), 2)
		end,
	})
end

-- Loads file into the definitions; returns its absolute path or nil,
-- "file:line: message".  hum.dir is the config's directory, absolute.
function M.load(file)
	local hum = require "hum"
	file = util.abspath(file)
	define.base_dir = util.dirname(file)
	hum.dir = define.base_dir
	-- modules next to the config: require "lib.services" finds
	-- <dir>/lib/services.lua, searched first (before HUM_PATH, the user's
	-- and the system's paths and the embedded modules: bind/modules.c)
	local dir = define.base_dir
	package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
	local chunk, err = loadfile(file)
	if not chunk then return nil, err end
	setfenv(chunk, M.strict_env(hum))
	-- interpreted, so the runaway-reaction hook can interrupt its loops
	-- (LuaJIT's compiled code never checks hooks); config code is glue
	jit.off(chunk, true)
	local ok, e = pcall(chunk)
	if not ok then return nil, tostring(e) end
	ok, e = pcall(define.finish)
	if not ok then return nil, tostring(e) end
	return file
end

-- `-f FILE` or the hum.lua found from here: loads it; returns its path or
-- nil, message (for up, run and check).
function M.find_and_load(file)
	file = file or M.find()
	if not file then return nil, "no hum.lua here or in a parent directory (use -f FILE)" end
	return M.load(file)
end

return M
