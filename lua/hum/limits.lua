-- hum.limits — every number that enters hum from a user (a definition, a
-- timer, a helper called in a reaction, a command-line count) is checked
-- here, against the rule named for it.  One rule per value, one check for
-- all of them: the README's "Limits and guarantees" lists the same table.
--
-- A number must be a number, not NaN, finite (never math.huge: a limit
-- that is not wanted is left out), within [min, max], and whole where the
-- rule counts something; a rule with `none` also takes that one value as
-- "no limit" (restart.max = -1, as the default).  NaN passes every comparison, so a check
-- written as `v < 0` lets it through; here each bound is asked the other
-- way round (`v >= min`), which NaN fails.

local M = {}

local YEAR = 365 * 86400 -- the longest duration: beyond it, a typo or a unit mix-up
M.MAX_SECONDS = YEAR

-- what: seconds | count; min, max inclusive; none: the value meaning "no limit".
local function seconds(min) return { what = "seconds", min = min, max = YEAR } end
local function count(min, max, none)
	return { what = "count", min = min, max = max, integer = true, none = none }
end

-- A duration a timer waits for may be 0 (at once); an interval between
-- repeated checks, or a timeout that must be able to pass, is at least 1 ms.
M.rules = {
	["stop.grace"] = seconds(0),
	["restart.max"] = count(0, 1e6, -1),
	["restart.backoff"] = seconds(0),
	["restart.reset"] = seconds(0),
	["probe.interval"] = seconds(0.001),
	["probe.period"] = seconds(0.001),
	["probe.timeout"] = seconds(0), -- 0: readiness never gives up
	["probe.retries"] = count(1, 1e6),
	["port"] = count(1, 65535),
	["scale"] = count(1, 1000),
	["hum.after"] = seconds(0),
	["hum.every"] = seconds(0.001),
	["hum.sleep"] = seconds(0),
	["hum.wait timeout"] = seconds(0),
	["hum.exec timeout"] = seconds(0.001),
	["jobs"] = count(1, 1000),
}

local function show(v)
	if type(v) == "string" then return ("%q"):format(v) end
	if type(v) ~= "number" then return ("a %s"):format(type(v)) end
	if v ~= v then return "NaN" end
	if v == math.huge then return "math.huge" end
	if v == -math.huge then return "-math.huge" end
	return ("%.14g"):format(v)
end

local function range(r)
	local unit = r.what == "seconds" and "seconds" or "a whole number"
	local s = ("%s from %s to %s"):format(unit, show(r.min), show(r.max))
	if r.max == YEAR then s = s .. " (365 days)" end
	if r.none then s = s .. (", or %s for no limit"):format(show(r.none)) end
	return s
end
M.range = range

-- Checks v against the rule `name`; label is what the message calls it
-- (default: name).  Returns v, or nil and "<label> must be <range>, not <v>".
function M.check(v, name, label)
	local r = assert(M.rules[name], "no limit named " .. tostring(name))
	if type(v) == "number" then
		if v == r.none then return v end
		if v >= r.min and v <= r.max and (not r.integer or v == math.floor(v)) then return v end
	end
	return nil, ("%s must be %s, not %s"):format(label or name, range(r), show(v))
end

-- Sizes taken from the environment: bytes, or a whole number with K, M or G
-- (binary: 1K = 1024 bytes), the form HUM_LUA_MEMORY takes too.
M.sizes = {
	HUM_LOG_MAX = { min = 2 ^ 10, max = 2 ^ 40 }, -- .hum/hum.log's rotation bound
}
local UNIT = { [""] = 1, K = 2 ^ 10, M = 2 ^ 20, G = 2 ^ 30 }

-- Parses text as the size `name` (a key of M.sizes).  Returns the bytes, or
-- nil and "<name> must be a size from 1K to 1024G ..., not "<text>"".
function M.size(text, name)
	local r = assert(M.sizes[name], "no size named " .. tostring(name))
	local digits, unit = tostring(text):match("^(%d+)([KkMmGg]?)$")
	local v = digits and tonumber(digits) * UNIT[unit:upper()]
	if v and v >= r.min and v <= r.max then return v end
	return nil, ("%s must be a size from 1K to 1024G (bytes, or a whole number with K, M or G), not %q")
		:format(name, tostring(text))
end

-- The same, raising the message at `level` (1 = the caller of need).
function M.need(v, name, level, label)
	local ok, err = M.check(v, name, label)
	if ok == nil then error(err, level + 1) end
	return v
end

return M
