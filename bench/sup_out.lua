-- bench/sup_out.lua — shared by the bench/sup_*.lua configs (hum finds it
-- next to them): out(s) appends s to $SUP_OUT, which build/bench/sup_bench
-- reads back as "key value" lines.
local OUT = assert(os.getenv("SUP_OUT"), "SUP_OUT not set")

return function(s)
	local f = assert(io.open(OUT, "a"))
	f:write(s)
	f:close()
end
