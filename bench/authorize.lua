-- wrk script: POST Function's authorization call with a key drawn at random from the seeded
-- set and one of a few predictor tags. BENCH_KEYS names the keys file, BENCH_PATH the
-- authorize path; BENCH_DELAY_MS > 0 paces each connection, waiting that long on average
-- between requests (for latency at a set rate).
local tags = { "@acme/sdxl", "@acme/llama-3", "@acme/whisper", "@acme/upscale" }
local keys = {}
local path = os.getenv("BENCH_PATH")
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

function init(args)
  for line in io.lines(os.getenv("BENCH_KEYS")) do
    keys[#keys + 1] = line
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end

function request()
  local body = '{"tag":"' .. tags[math.random(#tags)] .. '","accessKey":"' .. keys[math.random(#keys)] .. '"}'
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

-- Each wait is drawn uniformly from [0, 2 x BENCH_DELAY_MS) ms: with one fixed wait, all the
-- connections fire on the same millisecond timer tick and the server sees bursts of 64.
if pace > 0 then
  function delay()
    return math.random() * 2 * pace
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
