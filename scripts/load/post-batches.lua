-- wrk script: every request posts a backlog of 100 new, unique events from one device
-- (POST /sync-events); 500 simulated devices per wrk thread, about one in ten failed.
local counter = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

created = 0
tokens = {}

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

function response(status, headers, body)
  if status == 200 then
    local n = body:match('"created":(%d+)')
    if n then created = created + tonumber(n) end
  end
end

request = function()
  counter = counter + 1
  local device = string.format("batch-%s-%d-%d", run_id, thread_id, counter % 500)
  local round = math.floor(counter / 500)
  local events = {}
  for k = 0, 99 do
    local n = round * 100 + k
    local errors = 0
    if math.random(10) == 1 then errors = math.random(5) end
    events[#events + 1] = string.format(
      '{"device_id":"%s","timestamp":"2025-05-08T%02d:%02d:%02d.%03dZ","total_files_synced":%d,"total_errors":%d,"internet_speed":%.1f}',
      device, math.floor(n / 3600000) % 24, math.floor(n / 60000) % 60, math.floor(n / 1000) % 60, n % 1000,
      math.random(100), errors, math.random() * 50)
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = tokens[device]}
  return wrk.format("POST", "/sync-events", headers, body)
end

done = function(summary, latency, requests)
  local total_created = 0
  for _, t in ipairs(threads) do total_created = total_created + t:get("created") end
  local seconds = summary.duration / 1e6
  io.write(string.format("requests/s %.0f\n", summary.requests / seconds))
  io.write(string.format("events/s %.0f\n", total_created / seconds))
  io.write(string.format("p50 %.2f ms\np99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("created %d of %d events sent\n", total_created, summary.requests * 100))
  io.write(string.format("non-2xx %d\nsocket errors %d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
