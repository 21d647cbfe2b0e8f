-- POST /scim/v2/Users with a unique userName per request (per-thread prefix and counter).
local token = os.getenv("TOKEN")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end

local counter = 0
-- RUN_ID tells apart wrk processes started together (bench/postgres.sh runs two).
local run = (os.getenv("RUN_ID") or "") .. tostring(os.time())

request = function()
  counter = counter + 1
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bench-%s-%d-%d@example.com",' ..
    '"name":{"givenName":"Bench","familyName":"User"},"emails":[{"value":"bench%d@example.com","type":"work","primary":true}],"active":true}',
    run, thread_id, counter, counter)
  return wrk.format("POST", "/scim/v2/Users",
    { ["Content-Type"] = "application/scim+json", ["Authorization"] = "Bearer " .. token }, body)
end
