-- GET /Users?filter=emails[type eq "work" and value eq "user<random>@example.com"]
local token = os.getenv("TOKEN")
local users = tonumber(os.getenv("USERS"))
math.randomseed(os.time())
request = function()
  local i = math.random(0, users - 1)
  return wrk.format("GET",
    "/scim/v2/Users?filter=emails%5Btype%20eq%20%22work%22%20and%20value%20eq%20%22user" .. i .. "%40example.com%22%5D",
    { ["Authorization"] = "Bearer " .. token })
end
