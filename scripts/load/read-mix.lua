-- wrk script: a read mix against devices the write load created:
-- 80% history pages of a random device, 20% repeated-failures pages.
local counter = 0

local headers = {}

function init(args)
  run_id = args[1] or "0"
  math.randomseed(os.time())
  if args[2] then
    for line in io.lines(args[2]) do
      local token = line:match("^read (%S+)$")
      if token then headers["Authorization"] = "Bearer " .. token end
    end
  end
end

request = function()
  counter = counter + 1
  if counter % 5 == 0 then
    return wrk.format("GET", "/devices/repeated-failures?limit=50", headers)
  end
  local device = string.format("load-%s-%d-%d", run_id, math.random(0, 1), math.random(0, 4999))
  return wrk.format("GET", "/device/" .. device .. "/sync-history?limit=20", headers)
end

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("p50 %.2f ms\np99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("non-2xx %d\nsocket errors %d\n", summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
