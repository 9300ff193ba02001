-- wrk script: POST Function's authorization call, each request one of a set rendered once at
-- start (every key of the seeded set, each with one of four predictor tags), picked at random:
-- building a body per request cost the generator more than the server it measured. BENCH_KEYS
-- names the keys file, BENCH_PATH the authorize path; BENCH_DELAY_MS > 0 paces each
-- connection, waiting that long on average between requests (for latency at a set rate).
local tags = { "@acme/sdxl", "@acme/llama-3", "@acme/whisper", "@acme/upscale" }
local requests = {}
local path = os.getenv("BENCH_PATH")
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

function init(args)
  local headers = { ["Content-Type"] = "application/json" }
  local n = 0
  for key in io.lines(os.getenv("BENCH_KEYS")) do
    n = n + 1
    local body = '{"tag":"' .. tags[n % #tags + 1] .. '","accessKey":"' .. key .. '"}'
    requests[n] = wrk.format("POST", path, headers, body)
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  return requests[math.random(#requests)]
end

-- Each wait is drawn uniformly from [0, 2 x BENCH_DELAY_MS) ms: with one fixed wait, all the
-- connections fire on the same millisecond timer tick and the server sees bursts of 64. wrk
-- waits whole milliseconds (it drops the fraction), so the draw is rounded up or down at
-- random, up as often as its fraction says: the waits' mean stays BENCH_DELAY_MS (dropping
-- the fraction took 0.5 ms off every wait, and a connection asked for a third more).
if pace > 0 then
  function delay()
    local wait = math.random() * 2 * pace
    local whole = math.floor(wait)
    if math.random() < wait - whole then
      whole = whole + 1
    end
    return whole
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.2f, "rps": %.0f, "p50_us": %d, "p99_us": %d, "p999_us": %d, "non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
