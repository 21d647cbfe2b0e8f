-- POST /scim/v2/Users with a unique userName, a work email and an allowed department.
local token = os.getenv("TOKEN")
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
local counter = 0
local run = tostring(os.time())
request = function()
  counter = counter + 1
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],' ..
    '"userName":"E-%s-%d-%d","name":{"givenName":"Bench","familyName":"User"},' ..
    '"emails":[{"value":"bench-%s-%d-%d@example.com","type":"work","primary":true}],"active":true,' ..
    '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Sales"}}',
    run, thread_id, counter, run, thread_id, counter)
  return wrk.format("POST", "/scim/v2/Users",
    { ["Content-Type"] = "application/scim+json", ["Authorization"] = "Bearer " .. token }, body)
end
