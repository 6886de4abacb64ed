-- hum.cli.fmt — terminal output shared by the client commands: whether to
-- colour, the colours of process names and states, aligned tables.
local raw = require "hum.raw"

local M = {}

-- Colour only on a terminal, never with NO_COLOR set or TERM=dumb.
function M.want_color()
	local nc = os.getenv("NO_COLOR")
	if nc and nc ~= "" then return false end
	if os.getenv("TERM") == "dumb" then return false end
	return raw.isatty(1)
end

M.PALETTE = { "36", "33", "32", "35", "34", "96", "93", "92", "95", "94" } -- as core/sup/outfmt.c
M.STATE_COLOR = {
	running = "32", ready = "32", succeeded = "32",
	starting = "33", stopping = "33", backoff = "33", pending = "33",
	failed = "31", stopped = "2",
	paused = "33", -- a running process stopped by a signal (SIGSTOP, SIGTSTP)
}

-- The name column of log lines, as the foreground printer draws it
-- (core/sup/outfmt.c): one width for every line, at most NAME_MAX columns;
-- shorter names padded, longer ones cut with an ellipsis.  Columns are
-- UTF-8 characters.
M.NAME_MAX = 32

local function columns(s)
	local _, n = s:gsub("[^\128-\191]", "")
	return n
end

function M.name_width(names)
	local w = 3 -- "hum", hum's own lines
	for _, n in ipairs(names) do w = math.max(w, columns(n)) end
	return math.min(w, M.NAME_MAX)
end

function M.fit_name(name, width)
	local cols = columns(name)
	if cols <= width then return name .. (" "):rep(width - cols) end
	local keep, c = #name, 0
	for pos in name:gmatch("()[^\128-\191]") do
		if c == width - 1 then keep = pos - 1 break end
		c = c + 1
	end
	return name:sub(1, keep) .. "\226\128\166" -- U+2026 …
end

function M.paint(on, code, s)
	if not on or not code then return s end
	return "\027[" .. code .. "m" .. s .. "\027[0m"
end

-- Text from the server made safe to print on a terminal: control bytes
-- (C0, DEL, and C1 as UTF-8: U+0080-U+009F) become visible \xHH, so a
-- process name or a reason cannot move the cursor, retitle the window or
-- send escape sequences to the terminal.  Process output (`hum logs`) is
-- the process's own and is printed as it is.
function M.safe(s)
	s = tostring(s)
	if not s:find("[%z\1-\31\127\194]") then return s end
	s = s:gsub("[%z\1-\31\127]", function(c) return ("\\x%02x"):format(c:byte()) end)
	return (s:gsub("\194([\128-\159])", function(c) return ("\\u%04x"):format(c:byte()) end))
end

-- Prints rows of cells, columns padded to their widest cell (the last one
-- is not padded); a cell is text or { text, colour code }.
function M.table_print(rows, color)
	local w = {}
	for _, r in ipairs(rows) do
		for k, cell in ipairs(r) do
			local len = #M.safe(type(cell) == "table" and cell[1] or cell)
			if k < #r and (not w[k] or len > w[k]) then w[k] = len end
		end
	end
	local out = {}
	for _, r in ipairs(rows) do
		local parts = {}
		for k, cell in ipairs(r) do
			local text, code = cell, nil
			if type(cell) == "table" then text, code = cell[1], cell[2] end
			text = M.safe(text)
			local pad = k < #r and (" "):rep(w[k] - #text) or ""
			parts[#parts + 1] = M.paint(color, code, text) .. pad
		end
		out[#out + 1] = (table.concat(parts, "  "):gsub("%s+$", ""))
	end
	io.stdout:write(table.concat(out, "\n"), "\n")
end

return M
