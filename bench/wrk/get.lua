-- wrk: GET the URL given to wrk with a bearer token, counting what the answers hold.
-- Adapted from /work/shared/bench/get.lua.
--
-- env:
--   TOKEN   the bearer token
--   COUNT   a string counted in each answer's body (e.g. '"mode":"match"'), plain text
--   EXPECT  how many times COUNT must occur in a good answer (default: any number)
-- An answer is good when its status is 200 and, with EXPECT, COUNT occurs EXPECT times.
-- Prints the same RESULT line as post.lua.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local count_what, expect

function init(args)
  wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")
  wrk.headers["Accept"] = "application/fhir+json"
  count_what = os.getenv("COUNT") or ""
  expect = tonumber(os.getenv("EXPECT") or "")
  bad = 0
  counted = 0
  first_bad = ""
end

local function occurrences(body, what)
  local n, at = 0, 1
  while true do
    local found = body:find(what, at, true)
    if not found then return n end
    n = n + 1
    at = found + #what
  end
end

function response(status, hdrs, body)
  local n = 0
  if count_what ~= "" then n = occurrences(body, count_what) end
  if status == 200 and (expect == nil or n == expect) then
    counted = counted + n
  else
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 300):gsub("%s", " ") end
  end
end

function done(summary, latency, requests)
  local nbad, ncounted, first = 0, 0, ""
  for _, t in ipairs(threads) do
    nbad = nbad + (t:get("bad") or 0)
    ncounted = ncounted + (t:get("counted") or 0)
    if first == "" then first = t:get("first_bad") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bad=%d counted=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f errors=%d/%d/%d/%d/%d\n",
    summary.requests, summary.duration, nbad, ncounted, latency:percentile(50) / 1000,
    latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    e.connect, e.read, e.write, e.timeout, e.status))
  if first ~= "" then io.write("FIRST_BAD " .. first .. "\n") end
end
