-- wrk script: every request posts a new, unique sync event; about one in ten failed.
-- 5,000 simulated devices per wrk thread, each reporting with increasing timestamps.
local counter = 0
-- thread_id is set per thread by setup() (a global in each thread's Lua state).
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

created = 0

function response(status, headers, body)
  if status == 201 then created = created + 1 end
end

-- "device token" lines (the first, "read …", is the operator's); empty without auth.
local tokens = {}

function init(args)
  math.randomseed(os.time() + thread_id)
  run_id = args[1] or tostring(os.time())
  if args[2] then
    for line in io.lines(args[2]) do
      local device, token = line:match("^(%S+) (%S+)$")
      if device then tokens[device] = "Bearer " .. token end
    end
  end
end

request = function()
  counter = counter + 1
  local device = string.format("load-%s-%d-%d", run_id, thread_id, counter % 5000)
  local n = math.floor(counter / 5000)
  local ts = string.format("2025-05-07T%02d:%02d:%02d.%03dZ", math.floor(n / 3600000) % 24,
    math.floor(n / 60000) % 60, math.floor(n / 1000) % 60, n % 1000)
  local errors = 0
  if math.random(10) == 1 then errors = math.random(5) end
  local body = string.format(
    '{"device_id":"%s","timestamp":"%s","total_files_synced":%d,"total_errors":%d,"internet_speed":%.1f}',
    device, ts, math.random(100), errors, math.random() * 50)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = tokens[device]}
  return wrk.format("POST", "/sync-event", headers, body)
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("p50 %.2f ms\np99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  local total_created = 0
  for _, t in ipairs(threads) do total_created = total_created + t:get("created") end
  io.write(string.format("201 created %d of %d requests\n", total_created, summary.requests))
  io.write(string.format("non-2xx %d\nsocket errors %d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
