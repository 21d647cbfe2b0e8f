-- GET /Users?filter=userName eq "user<random>@example.com"
local token = os.getenv("TOKEN")
local users = tonumber(os.getenv("USERS"))
math.randomseed(os.time())
request = function()
  local i = math.random(0, users - 1)
  return wrk.format("GET", "/scim/v2/Users?filter=userName%20eq%20%22user" .. i .. "%40example.com%22",
    { ["Authorization"] = "Bearer " .. token })
end
