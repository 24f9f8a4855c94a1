-- wrk script: a submit + poll mix, the way a client uses a job API.
--
--   wrk ... URL -- POLLS SUBMIT_PATH POLL_PREFIX BODY_FILE
--
-- Of every POLLS + 1 requests one is a submit (POST SUBMIT_PATH with the JSON body read
-- from BODY_FILE and `Prefer: wait=0`) and POLLS are polls (GET POLL_PREFIX .. id) of
-- jobs this thread submitted: the job id is read from each 202 answer (its "id" field),
-- and polls go round the last 256 ids. The Authorization header comes from wrk's -H.
-- Until the first submit is answered, every request is a submit.

local polls, submit_path, poll_prefix, body
local ids, cap, head = {}, 256, 0
local n = 0
local post_headers, get_headers

function init(args)
  polls = tonumber(args[1])
  submit_path = args[2]
  poll_prefix = args[3]
  local f = assert(io.open(args[4], "rb"))
  body = f:read("*a")
  f:close()
  post_headers, get_headers = {}, {}
  for k, v in pairs(wrk.headers) do
    post_headers[k] = v
    get_headers[k] = v
  end
  post_headers["Content-Type"] = "application/json"
  post_headers["Prefer"] = "wait=0"
end

function request()
  n = n + 1
  if #ids == 0 or n % (polls + 1) == 1 then
    return wrk.format("POST", submit_path, post_headers, body)
  end
  return wrk.format("GET", poll_prefix .. ids[(n % #ids) + 1], get_headers)
end

function response(status, headers, resp_body)
  if status == 202 then
    local id = resp_body:match('"id"%s*:%s*"([^"]+)"')
    if id then
      head = head % cap + 1
      ids[head] = id
    end
  end
end
