-- hum.runtime.heap — a min-heap of instances ordered by definition order
-- (i.idx), each instance at most once: the order in which startable
-- instances start (README, "Lifecycle rules": definition order breaks ties).
local M = {}

function M.new() return { n = 0, has = {} } end

-- Adds i unless it is in h already.  O(log n).
function M.push(h, i)
	if h.has[i] then return end
	h.has[i] = true
	local n = h.n + 1
	h.n = n
	h[n] = i
	while n > 1 do
		local up = math.floor(n / 2)
		if h[up].idx <= i.idx then break end
		h[n], h[up] = h[up], i
		n = up
	end
end

-- Removes and returns the instance with the smallest idx (nil: empty).
function M.pop(h)
	local top = h[1]
	if not top then return nil end
	local last = h[h.n]
	h[h.n] = nil
	h.n = h.n - 1
	h.has[top] = nil
	if h.n > 0 then
		local k = 1
		h[1] = last
		while true do
			local l, r, m = 2 * k, 2 * k + 1, k
			if l <= h.n and h[l].idx < h[m].idx then m = l end
			if r <= h.n and h[r].idx < h[m].idx then m = r end
			if m == k then break end
			h[k], h[m] = h[m], h[k]
			k = m
		end
	end
	return top
end

return M
