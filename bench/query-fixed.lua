-- GET of the path in QUERY_PATH.
local token = os.getenv("TOKEN")
local path = os.getenv("QUERY_PATH")
request = function()
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
