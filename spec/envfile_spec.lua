-- Env files as people write them (hum.envfile, the one parser behind
-- hum.env_file): quotes, escapes, expansion once, comments, `export`,
-- multi-line values, and errors as file:line: message.  Unit specs load
-- the module from lua/ (it needs nothing from C); the last ones run hum.
local S = require "support.hum"

local saved_path = package.path
package.path = S.ROOT .. "/lua/?.lua;" .. package.path
local envfile = require "hum.envfile"
package.path = saved_path

-- The parse of text as a table KEY -> value (the last one wins), or an error.
local function parse(text, env)
	local list, err = envfile.parse(text, ".env", function(k) return (env or {})[k] end)
	if not list then return nil, err end
	local t = {}
	for _, kv in ipairs(list) do t[kv[1]] = kv[2] end
	return t, list
end

describe("env files", function()
	it("read double-quoted escapes as the README promises", function()
		local t = assert(parse [[
TOOLS="C:\\tools\\"
NEXT=ok
E="a\nb\tc\rd \"q\" \$HOME \\$HOME"
KEEP="C:\path\x"
]])
		assert.are.equal([[C:\tools\]], t.TOOLS)
		assert.are.equal("ok", t.NEXT)
		assert.are.equal('a\nb\tc\rd "q" $HOME \\', t.E)
		assert.are.equal([[C:\path\x]], t.KEEP)
	end)

	it("take single quotes literally and unquoted values trimmed, with comments", function()
		local t, list = assert(parse([[
# a comment
   # an indented comment

export A=1
  B = two words   # a comment
C='single $A \n ${A}'
D=a#b
E=
F="x" # after the quote
G='it\'s'
H=C:\tools
I=it's
]], { HOME = "/home/u" }))
		assert.are.same({ "A", "B", "C", "D", "E", "F", "G", "H", "I" }, (function()
			local keys = {}
			for k, kv in ipairs(list) do keys[k] = kv[1] end
			return keys
		end)())
		assert.are.equal("1", t.A)
		assert.are.equal("two words", t.B)
		assert.are.equal([[single $A \n ${A}]], t.C)
		assert.are.equal("a#b", t.D)
		assert.are.equal("", t.E)
		assert.are.equal("x", t.F)
		assert.are.equal("it's", t.G)
		assert.are.equal([[C:\tools]], t.H)
		assert.are.equal("it's", t.I)
	end)

	it("expand $VAR and ${VAR} forms once, from earlier lines then the lookup", function()
		local t = assert(parse([[
A=1
EMPTY=
LIT='$HOME ${A}'
B=${A}-$A-${HOME}-$UNKNOWN.
C="${LIT}"
D=$LIT
E=$$A costs $ 5
F=${NOPE:-def $A}|${EMPTY:-e}|${EMPTY-u}|${A:+alt}|${EMPTY:+x}|${EMPTY+set}
G=${NOPE:-${ALSO:-deep}}
H="\${A} ${A}"
]], { HOME = "/home/u", A = "from-lookup" }))
		assert.are.equal("1-1-/home/u-.", t.B)
		-- a value holding a $ is never expanded a second time
		assert.are.equal("$HOME ${A}", t.C)
		assert.are.equal("$HOME ${A}", t.D)
		assert.are.equal("$A costs $ 5", t.E)
		assert.are.equal("def 1|e||alt||set", t.F)
		assert.are.equal("deep", t.G)
		assert.are.equal("${A} 1", t.H)
	end)

	it("read quoted values over several lines, CRLF files and a BOM", function()
		local t = assert(parse('\239\187\191A="first\r\nsecond"\r\nB=\'x\ny\' # c\r\nC=3\r\n'))
		assert.are.equal("first\nsecond", t.A)
		assert.are.equal("x\ny", t.B)
		assert.are.equal("3", t.C)
	end)

	local errors = {
		{ 'A=1\nB="open\nC=3\n', ".env:2: unterminated double quote" },
		{ "A=1\n\nB='open\n", ".env:3: unterminated single quote" },
		{ 'A="x" y\n', '.env:1: unexpected "y" after the closing quote' },
		{ "A=1\nnot a line\n", ".env:2: expected KEY=VALUE" },
		{ "export\n", ".env:1: expected KEY=VALUE" },
		{ "=x\n", ".env:1: expected KEY=VALUE" },
		{ "A=${B\n", ".env:1: unterminated ${" },
		{ "A=${1}\n", ".env:1: bad substitution ${1}" },
		{ "A=${B:x}\n", ".env:1: bad substitution ${B:...}" },
		{ "A=${B?B is required}\n", ".env:1: B: B is required" },
		{ "E=\nA=${E:?}\n", ".env:2: E: not set or empty" },
		{ 'M="a\nb"\nA=${X?}\n', ".env:3: X: not set" },
		{ "A=x\0y\n", ".env:1: a value cannot hold a NUL byte" },
	}
	for _, c in ipairs(errors) do
		it("report " .. c[2]:gsub("^%.env:%d+: ", "") .. " as file:line", function()
			local t, err = parse(c[1])
			assert.is_nil(t)
			assert.are.equal(c[2], err)
		end)
	end

	it("reach the processes: escapes, no second expansion, and errors at the hum.env_file line", function()
		local dir = S.tmpdir()
		S.write(dir .. "/.env", [[
TOOLS="C:\\tools\\"
PRICE='$HOME costs $5'
COPY=${PRICE}
GREETING="${FROM_HUM_ENV}, ${HUM_SPEC_OUTER:-outer unset}"
]])
		local out = dir .. "/out"
		local file = S.config(([[
local hum = require "hum"
hum.env { FROM_HUM_ENV = "hello" }
hum.env_file ".env"
hum.task "show" { cmd = { "sh", "-c", 'printf "%%s\n" "$TOOLS" "$PRICE" "$COPY" "$GREETING" > "$1"', "sh", %q } }
]]):format(out), dir)
		local code, o = S.run({ "run", "-f", file, "show" }, { env = { HUM_SPEC_OUTER = "from hum's environment" } })
		assert.are.equal(0, code, o)
		assert.are.same({ [[C:\tools\]], "$HOME costs $5", "$HOME costs $5", "hello, from hum's environment" },
			S.file_lines(out))

		S.write(dir .. "/bad.env", "OK=1\nTOOLS=\"C:\\tools\\\"\n")
		file = S.config('local hum = require "hum"\n\nhum.env_file "bad.env"\nhum.task "t" { cmd = "true" }\n', dir)
		code, o = S.run({ "check", "-f", file })
		assert.are.equal(1, code, o)
		assert.matches("hum%.lua:3: hum%.env_file: [^\n]*bad%.env:2: unterminated double quote", o)
	end)
end)
