-- wrk: POST a body to PATH_ with a bearer token, counting what the answers hold.
-- Adapted from /work/shared/bench/post.lua (the peer comparison's load script).
--
-- env:
--   BODY_FILE   the body; in it @@NHS@@ becomes a new valid NHS number (Modulus 11) and @@RID@@
--               a new referral identifier on every request
--   PATH_       the path to POST to (default /fhir)
--   TOKEN       the bearer token (none when empty)
--   NHS_START   first nine-digit stem of the NHS numbers (default 999000000); thread t takes
--               the stems from NHS_START + (t - 1) * NHS_STRIDE on
--   NHS_STRIDE  stems per thread (default 400000)
--   RID_PREFIX  referral identifiers are RID_PREFIX-<thread>-<n> (default PERF)
--   COUNT       a string counted in each answer's body (e.g. "201 Created"), plain text
--   EXPECT      how many times COUNT must occur in a good answer (default: any number)
-- An answer is good when its status is 200 or 201 and, with EXPECT, COUNT occurs EXPECT times.
-- Prints: RESULT requests=... duration_us=... bad=... counted=... p50_ms=... p90_ms=... p99_ms=...
--         errors=<connect>/<read>/<write>/<timeout>/<status>, and the first bad answer (FIRST_BAD).
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local template, path, headers, count_what, expect, stride, start, prefix

function init(args)
  local f = assert(io.open(os.getenv("BODY_FILE"), "r"))
  template = f:read("*a"); f:close()
  path = os.getenv("PATH_") or "/fhir"
  headers = {["Content-Type"] = "application/fhir+json", ["Accept"] = "application/fhir+json"}
  local token = os.getenv("TOKEN") or ""
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  count_what = os.getenv("COUNT") or ""
  expect = tonumber(os.getenv("EXPECT") or "")
  stride = tonumber(os.getenv("NHS_STRIDE") or "400000")
  start = tonumber(os.getenv("NHS_START") or "999000000")
  prefix = os.getenv("RID_PREFIX") or "PERF"
  stem = start + (tid - 1) * stride
  serial = 0
  bad = 0
  counted = 0
  first_bad = ""
end

local function next_nhs()
  while true do
    local base = string.format("%09d", stem)
    stem = stem + 1
    local sum = 0
    for i = 1, 9 do sum = sum + tonumber(base:sub(i, i)) * (11 - i) end
    local check = 11 - (sum % 11)
    if check == 11 then check = 0 end
    if check ~= 10 then return base .. check end
  end
end

function request()
  serial = serial + 1
  local body = template:gsub("@@NHS@@", next_nhs()):gsub("@@RID@@", prefix .. "-" .. tid .. "-" .. serial)
  return wrk.format("POST", path, headers, body)
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
  if (status == 200 or status == 201) and (expect == nil or n == expect) then
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
