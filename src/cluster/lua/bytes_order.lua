-- Rust's `String` order (bytewise), whatever the server's locale makes of Lua's `<`:
-- how the routing scripts sort what they list. Prepended by the Rust adapter to each
-- script that sorts (`lua/routing.lua`, `lua/snapshot.lua`), so it is written once.
local function bytes_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
