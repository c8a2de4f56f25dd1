-- wrk script for bench/run.sh. BENCH_MODE picks the call:
--   orders  POST /v1/orders                 (JSON body, bearer token)
--   v2add   POST /api/v2 action=add         (form body, API key)
--   get     GET  /v1/orders/{id}            (one of the account's own orders)
--   batch   GET  /v1/orders/status?ids=...  (all 100 of the account's orders)
--   v2status POST /api/v2 action=status      (one of the account's own orders, API key)
--   bare    GET  /bare                      (ceiling 2: no database)
-- BENCH_ACCOUNTS names the file `reseller-api bench-load setup` wrote, one reseller a
-- line: account_id token api_key service_id order_ids. Requests rotate over the
-- resellers so no single account's quota or row lock is the bottleneck.
-- The summary is one `RESULT key=value ...` line, read by run.sh.

local mode = os.getenv("BENCH_MODE") or "bare"
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local accounts = {}
local n = 0
local i = 0
bad = 0

function init(args)
  if mode == "bare" then return end
  for line in io.lines(os.getenv("BENCH_ACCOUNTS")) do
    local id, token, key, service, ids = line:match("^(%S+) (%S+) (%S+) (%S+) (%S+)$")
    if id then
      local list = {}
      for o in ids:gmatch("%d+") do list[#list + 1] = o end
      accounts[#accounts + 1] = { token = token, key = key, service = service, ids = list, csv = ids }
    end
  end
  n = #accounts
  i = tid * 7
end

local link = "https://example.com/p/bench"

function request()
  if mode == "bare" then
    return wrk.format("GET", "/bare")
  end
  i = i + 1
  local a = accounts[i % n + 1]
  if mode == "orders" then
    return wrk.format("POST", "/v1/orders",
      { ["Authorization"] = "Bearer " .. a.token, ["Content-Type"] = "application/json" },
      '{"service_id":' .. a.service .. ',"link":"' .. link .. '","quantity":100}')
  elseif mode == "v2add" then
    return wrk.format("POST", "/api/v2",
      { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "key=" .. a.key .. "&action=add&service=" .. a.service ..
      "&link=https%3A%2F%2Fexample.com%2Fp%2Fbench&quantity=100")
  elseif mode == "get" then
    return wrk.format("GET", "/v1/orders/" .. a.ids[(i * 13) % #a.ids + 1],
      { ["Authorization"] = "Bearer " .. a.token })
  elseif mode == "v2status" then
    return wrk.format("POST", "/api/v2",
      { ["Content-Type"] = "application/x-www-form-urlencoded" },
      "key=" .. a.key .. "&action=status&order=" .. a.ids[(i * 13) % #a.ids + 1])
  else
    return wrk.format("GET", "/v1/orders/status?ids=" .. a.csv,
      { ["Authorization"] = "Bearer " .. a.token })
  end
end

-- API v2 answers refusals with HTTP 200 and {"error": ...}: count those by the body.
if mode == "v2add" then
  function response(status, headers, body)
    if status ~= 200 or not body:find('^{"order":') then
      bad = bad + 1
    end
  end
elseif mode == "v2status" then
  function response(status, headers, body)
    if status ~= 200 or not body:find('"status":') then
      bad = bad + 1
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  for _, t in ipairs(threads) do
    errors = errors + (tonumber(t:get("bad")) or 0)
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT requests=%d errors=%d seconds=%.3f rps=%.1f p50_us=%d p99_us=%d\n",
    summary.requests, errors, seconds, summary.requests / seconds,
    latency:percentile(50), latency:percentile(99)))
end
