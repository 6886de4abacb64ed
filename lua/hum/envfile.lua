-- hum.envfile — the one parser of env files (hum.env_file), reading them as
-- docker compose and dotenv do:
--
--   # a comment                 whole-line comments and blank lines
--   export KEY=value            the `export ` prefix is ignored
--   KEY=value  # comment        unquoted: trimmed; a comment starts at a `#`
--                               after whitespace; $VAR / ${VAR} expanded;
--                               a backslash is an ordinary character
--   KEY='literal $X'            single quotes: as written (\' is a quote)
--   KEY="a\tb ${X}"             double quotes: \n \r \t \\ \" \$ escapes
--                               (any other \x stays as written), expansion
--   KEY="first                  quoted values may span lines
--   second"
--
-- Expansion: $NAME, ${NAME}, ${NAME:-default} (unset or empty),
-- ${NAME-default} (unset), ${NAME:+alt}, ${NAME+alt}, ${NAME:?message}
-- and ${NAME?message} (an error naming the line), nested in the word;
-- `$$` is a `$`; a `$` before anything else is itself.  NAME is looked up
-- in the file's earlier lines, then through `lookup` (hum.env, earlier
-- files, hum's environment); an unknown name is empty.  Expansion happens
-- once, while the file is read: a value holding a `$` (from single quotes,
-- \$, $$, or another variable's value) is never expanded again.
--
-- Errors are "file:line: message", at the line the entry starts on (for an
-- unterminated quote, the line it opens on).

local M = {}

local NAME = "^[%a_][%w_]*"

-- A parse of one file: text, position, the current entry's line.
local P = {}
P.__index = P

function P:fail(fmt, ...)
	error({ msg = ("%s:%d: %s"):format(self.name, self.line, fmt:format(...)) }, 0)
end

-- The value of NAME, or nil when unset.
function P:get(k)
	local v = self.vars[k]
	if v ~= nil then return v end
	if self.lookup then return self.lookup(k) end
	return nil
end

-- Expands one `$...` at i in s (s:sub(i, i) == "$"); returns the text it
-- stands for and the index after it.
function P:dollar(s, i, escapes)
	local c = s:sub(i + 1, i + 1)
	if c == "$" then return "$", i + 2 end
	if c == "{" then
		local name, after = s:match("^([%a_][%w_]*)()", i + 2)
		if not name then
			if not s:find("}", i + 2, true) then self:fail("unterminated ${") end
			self:fail("bad substitution %s", s:match("^%${[^}]*}", i))
		end
		local op_colon, op, j = s:match("^(:?)([-+?]?)()", after)
		if op == "" then
			if op_colon ~= "" or s:sub(j, j) ~= "}" then
				if s:sub(j, j) == "" then self:fail("unterminated ${") end
				self:fail("bad substitution ${%s%s...}", name, op_colon)
			end
			return self:get(name) or "", j + 1
		end
		-- the word runs to the matching }, itself expanded
		local word, k = self:expand(s, j, "}", escapes)
		if s:sub(k, k) ~= "}" then self:fail("unterminated ${") end
		local v = self:get(name)
		local set = v ~= nil and (op_colon == "" or v ~= "")
		if op == "-" then v = set and v or word
		elseif op == "+" then v = set and word or ""
		elseif not set then
			self:fail("%s: %s", name, word ~= "" and word or (op_colon ~= "" and "not set or empty" or "not set"))
		end
		return v, k + 1
	end
	local name = s:match(NAME, i + 1)
	if name then return self:get(name) or "", i + 1 + #name end
	return "$", i + 1
end

-- Expands s from i until the character `stop` (not included; end of s if
-- nil), with double-quote escapes when `escapes`.  Returns the text and the
-- index where it stopped.
local ESC = { n = "\n", r = "\r", t = "\t", ["\\"] = "\\", ['"'] = '"', ["$"] = "$" }
function P:expand(s, i, stop, escapes)
	local out = {}
	local special = "[$\\" .. (stop and "%" .. stop or "") .. "]"
	while true do
		local j = s:find(special, i)
		if not j then
			out[#out + 1] = s:sub(i)
			return table.concat(out), #s + 1
		end
		out[#out + 1] = s:sub(i, j - 1)
		local c = s:sub(j, j)
		if c == stop then return table.concat(out), j end
		if c == "$" then
			local v
			v, i = self:dollar(s, j, escapes)
			out[#out + 1] = v
		elseif escapes then
			local e = s:sub(j + 1, j + 1)
			out[#out + 1] = ESC[e] or ("\\" .. e)
			i = j + 2
		else
			out[#out + 1] = "\\"
			i = j + 1
		end
	end
end

-- The body of a quoted value starting after the opening quote at i: the
-- raw text up to the closing quote (which a backslash escapes) and the
-- index after the quote.  The body may span lines.
function P:quoted(i, q)
	local text = self.text
	local j = i
	while true do
		local k = text:find("[\\" .. q .. "]", j)
		if not k then self:fail("unterminated %s quote", q == '"' and "double" or "single") end
		if text:sub(k, k) == q then return text:sub(i, k - 1), k + 1 end
		j = k + 2 -- a backslash and the character it escapes
	end
end

-- Reads the entry starting at position i (after leading blanks); returns
-- the position of the newline that ends its (last) line, or past the end.
function P:entry(i)
	local text = self.text
	local key, after = text:match("^export[ \t]+([%a_][%w_%.]*)[ \t]*=()", i)
	if not key then key, after = text:match("^([%a_][%w_%.]*)[ \t]*=()", i) end
	if not key then self:fail("expected KEY=VALUE") end
	i = text:match("^[ \t]*()", after)
	local q = text:sub(i, i)
	local v, rest
	if q == "'" or q == '"' then
		local body, k = self:quoted(i + 1, q)
		local startline = self.line
		if q == "'" then
			v = body:gsub("\\'", "'")
		else
			v = self:expand(body, 1, nil, true)
		end
		self.line = startline + select(2, body:gsub("\n", ""))
		rest = text:match("^[^\n]*", k)
		if not rest:match("^[ \t]*$") and not rest:match("^[ \t]+#") and not rest:match("^#") then
			self:fail("unexpected %q after the closing quote", rest:match("^[ \t]*(.-)[ \t]*$"))
		end
		i = k + #rest
	else
		local line = text:match("^[^\n]*", i)
		line = line:gsub("^#.*", ""):gsub("[ \t]+#.*$", ""):gsub("[ \t]+$", "")
		v = self:expand(line, 1)
		i = i + #text:match("^[^\n]*", i)
	end
	if v:find("\0", 1, true) then self:fail("a value cannot hold a NUL byte") end
	self.vars[key] = v
	self.out[#self.out + 1] = { key, v }
	return i
end

-- text -> a list of { key, value } in file order, or nil, "name:line: message".
-- lookup(NAME) -> string | nil resolves names the file does not define.
function M.parse(text, name, lookup)
	text = text:gsub("^\239\187\191", ""):gsub("\r\n", "\n")
	local p = setmetatable({ text = text, name = name, lookup = lookup, vars = {}, out = {}, line = 1 }, P)
	local ok, err = pcall(function()
		local i = 1
		while i <= #text do
			local s = text:match("^[ \t]*()", i)
			local c = text:sub(s, s)
			if c == "#" or c == "\n" or c == "" then
				i = s + #text:match("^[^\n]*", s) -- a comment, a blank line
			else
				i = p:entry(s)
			end
			-- i is at the newline that ends the line, or past the end
			p.line = p.line + 1
			i = i + 1
		end
	end)
	if not ok then
		if type(err) == "table" then return nil, err.msg end
		error(err, 0)
	end
	return p.out
end

function M.read(path, lookup)
	local f, err = io.open(path, "r")
	if not f then return nil, err end
	local text = f:read("*a")
	f:close()
	return M.parse(text, path, lookup)
end

return M
