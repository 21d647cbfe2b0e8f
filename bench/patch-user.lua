-- PATCH replace of one attribute (title) on a random user, ids from IDS_FILE.
local token = os.getenv("TOKEN")
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
math.randomseed(os.time())
local n = 0
request = function()
  n = n + 1
  local id = ids[math.random(1, #ids)]
  local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
    '"Operations":[{"op":"replace","path":"title","value":"Title ' .. n .. '"}]}'
  return wrk.format("PATCH", "/scim/v2/Users/" .. id,
    { ["Content-Type"] = "application/scim+json", ["Authorization"] = "Bearer " .. token }, body)
end
