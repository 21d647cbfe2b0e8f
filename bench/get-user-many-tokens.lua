-- GET /scim/v2/Users/{id}, each request with the next of many tokens (TOKENS_FILE, one per
-- line), more than the server remembers as verified: every signature is checked.
local path = "/scim/v2/Users/" .. os.getenv("USER_ID")
local tokens = {}
for line in io.lines(os.getenv("TOKENS_FILE")) do
  tokens[#tokens + 1] = line
end
local i = math.random(#tokens)

request = function()
  i = i % #tokens + 1
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. tokens[i] })
end
