-- GET /scim/v2/Users/{id} of one stored user.
local token = os.getenv("TOKEN")
local path = "/scim/v2/Users/" .. os.getenv("USER_ID")

request = function()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
